"""Faults injected from the host into the local stack on the real engine: the group supervisor
brings the whole data-parallel group back to serving, in every simulated vllm failure mode.

Each test runs the rendered scripts of the local stack with short simulated loads and short
supervision timings (the stack's own settings are minutes), breaks one thing the way it breaks
in production (a crash is SIGKILL to a process, a reboot restarts the container, a freeze stops
a process or the whole container, a hang is a rank that stays but stops answering), and
measures how long until the API serves a completion again. HEAL_BOUND is asserted; the times
printed (-s) are what the README quotes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from dataclasses import replace

import pytest
import yaml
from localstack import STACK, Traffic, api_server_pid, get, logs, sh, start, wait_for, wait_ready
from mocked import PROJECT_DIR

from checks import diagnostics
from core.config import load_config
from core.defaults import SUPERVISION_METRICS_PORT
from core.plan import plan_cluster
from core.stack import stack_file
from core.supervision import SUPERVISOR_DIR
from supervision.protocol import GENERATION, GROUP_RESTARTS, GROUP_SERVED, HEAD_HEALTHY, RESTART_CAPPED, VLLM_UP

# The simulated weight load (VLLM_SIM_LOAD_SECONDS): bounds are multiples of it.
LOAD_S = 3
HEAL_BOUND = 10 * LOAD_S
SUPERVISION = {
    "startGraceSeconds": 30,
    "unhealthySeconds": 3,
    "backoffSeconds": 1,
    "maxBackoffSeconds": 4,
    "stopTimeoutSeconds": 2,
    "barrierTimeoutSeconds": 15,
    "pollSeconds": 0.5,
}
DEFAULT, HEAD_EXITS, HEADLESS_WAITS = "", "head-exits-on-lost-rank", "headless-waits-for-head"
HEARTBEAT_TIMEOUT = "heartbeat-timeout"


def fault_plan(mode: str = DEFAULT, load_s: float = LOAD_S, **supervision):
    document = yaml.safe_load(stack_file(PROJECT_DIR, STACK).read_text())["config"]
    raw = {key.split(":", 1)[1]: value for key, value in document.items()}
    env = {"VLLM_SIM_LOAD_SECONDS": str(load_s), **({"VLLM_SIM_MODE": mode} if mode else {})}
    raw.update(supervision={**SUPERVISION, **supervision}, env={"extra": env})
    return plan_cluster(load_config(raw), stack=STACK)


def supervisor_metrics(node) -> dict[str, float]:
    status, text = get(f"{node.supervisor_url}/metrics", timeout=1)
    if status != 200:
        return {}
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(deepseek_supervisor_\w+) (\S+)$", text, re.M)}


def completes(plan) -> bool:
    body = json.dumps({"model": plan.served_model_name, "prompt": "The future of AI is", "max_tokens": 5}).encode()
    request = urllib.request.Request(
        f"{plan.head_local_url}/v1/completions", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def serving(plan):
    start(plan)
    ready = wait_ready(plan, timeout=60)
    assert ready.returncode == 0, ready.stderr
    assert completes(plan)


def healed_after(plan, since: float) -> float:
    """Seconds from `since` until every node took part in a group restart and the API completes."""
    while time.monotonic() - since < HEAL_BOUND:
        if all(supervisor_metrics(n).get(GROUP_RESTARTS, 0) >= 1 for n in plan.nodes):
            if completes(plan):
                return time.monotonic() - since
        time.sleep(0.25)
    pytest.fail(
        f"not serving again within {HEAL_BOUND}s ({HEAL_BOUND // LOAD_S} x the {LOAD_S}s load); logs:\n"
        + "\n".join(logs(plan, i)[-3000:] for i in range(len(plan.nodes)))
    )


def settled(plan) -> list[dict[str, float]]:
    """Every node's supervisor metrics once all agree that the group serves, in one generation.
    A heal is over for the client at its first completion; the supervisors learn it at their next
    polls, so reading them once right then races them."""
    seen: list[dict[str, float]] = []

    def agreed() -> bool:
        seen[:] = [supervisor_metrics(n) for n in plan.nodes]
        serving = all(m.get(VLLM_UP) == 1 and m.get(HEAD_HEALTHY) == 1 and m.get(GROUP_SERVED) == 1 for m in seen)
        return serving and len({m.get(GENERATION) for m in seen}) == 1

    wait_for(agreed, HEAL_BOUND, "every supervisor to see the group serving in one generation")
    return seen


def assert_group_restarted(plan, reason: str, elapsed: float):
    for i, (node, metrics) in enumerate(zip(plan.nodes, settled(plan), strict=True)):
        assert metrics[RESTART_CAPPED] == 0
        log = logs(plan, i)
        assert re.search(rf"supervisor\[{node.name}\]: group restart #1 to generation \d+: .*({reason})", log), log
    print(f"healed in {elapsed:.1f}s = {elapsed / LOAD_S:.1f} x the simulated load ({reason})")


@pytest.mark.parametrize("mode", [DEFAULT, HEAD_EXITS])
def test_a_crashed_headless_vllm_brings_the_group_back(clean_stack, mode):
    plan = fault_plan(mode)
    serving(plan)
    t0 = time.monotonic()
    # Its engine cores outlive it and keep the NPUs (vllm #55510): the new generation gets them only
    # because the supervisor stops vllm's whole process group.
    sh(f"kill -KILL {api_server_pid(plan.nodes[1].container_name)}")
    # In head-exits mode the head's own exit may be seen first.
    assert_group_restarted(plan, "vllm exited with status (-9|1)", healed_after(plan, t0))
    assert "Free memory on device" not in logs(plan, 1)


def test_a_rebooted_headless_node_brings_the_group_back(clean_stack, tmp_path):
    plan = fault_plan()
    serving(plan)
    t0 = time.monotonic()
    assert sh(f"docker restart -t 5 {plan.nodes[1].container_name}").returncode == 0
    # Whichever comes first: the rebooted node's supervisor, or the head's failing /health.
    assert_group_restarted(plan, "this container restarted|the head's /health failed", healed_after(plan, t0))

    # The diagnostics bundle reads what the supervisors say, the same on every node.
    metrics = settled(plan)
    diagnose = subprocess.run(
        [sys.executable, "-m", "ops.diagnose", STACK, "--out", str(tmp_path)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert diagnose.returncode == 0, diagnose.stderr
    summary = diagnose.stdout.splitlines()
    containers = [line for line in summary if line.startswith("  container ")]
    assert [line.split(" restarts=")[0] for line in containers] == [
        "  container vllm-sim-0: running",
        "  container vllm-sim-1: running",
    ]
    restarts, generation = int(metrics[0][GROUP_RESTARTS]), int(metrics[0][GENERATION])
    expected = f"supervisor: {restarts} group restart(s), generation {generation}, vllm up, head healthy"
    assert [line.strip() for line in summary if "supervisor:" in line] == [expected, expected]
    (archive,) = tmp_path.glob("diagnostics-local-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames()}
    assert names == {"summary.txt"} | {f"sim-{i}/{s}.txt" for i in (0, 1) for s in diagnostics.SECTIONS}


@pytest.mark.parametrize("mode", [DEFAULT, HEADLESS_WAITS])
def test_a_killed_head_brings_the_group_back(clean_stack, mode):
    plan = fault_plan(mode)
    serving(plan)
    t0 = time.monotonic()
    # The head container's init (the supervisor, and vllm with it) dies as in a crash; `docker kill`
    # would count as a deliberate stop, which the restart policy leaves alone.
    sh(f"kill -KILL $(docker inspect -f '{{{{.State.Pid}}}}' {plan.head.container_name})")
    # A headless vllm that exits with its head may report first.
    assert_group_restarted(plan, "this container restarted|vllm exited with status 1", healed_after(plan, t0))


def test_a_frozen_head_node_brings_the_group_back(clean_stack):
    plan = fault_plan(HEADLESS_WAITS)
    serving(plan)
    t0 = time.monotonic()
    sh(f"docker pause {plan.head.container_name}")
    time.sleep(8)
    sh(f"docker unpause {plan.head.container_name}")
    assert_group_restarted(plan, r"the head's /health failed", healed_after(plan, t0))


def test_a_stopped_headless_vllm_is_killed_and_the_group_comes_back(clean_stack):
    # The simulator's fast-fail mode: the head notices a silent rank within seconds and exits.
    # Real vllm does not (vllm #39863); under traffic the stall probe finds it (tests below).
    plan = fault_plan(f"{HEAD_EXITS},{HEARTBEAT_TIMEOUT}")
    serving(plan)
    t0 = time.monotonic()
    os.killpg(api_server_pid(plan.nodes[1].container_name), signal.SIGSTOP)
    assert_group_restarted(plan, "vllm exited with status 1", healed_after(plan, t0))


def test_a_slow_initial_load_is_left_alone(clean_stack):
    plan = fault_plan(load_s=4 * SUPERVISION["unhealthySeconds"])
    start(plan)
    ready = wait_ready(plan, timeout=SUPERVISION["startGraceSeconds"])
    assert ready.returncode == 0, ready.stderr
    for i, node in enumerate(plan.nodes):
        assert supervisor_metrics(node)[GROUP_RESTARTS] == 0
        assert "group restart" not in logs(plan, i)


def given_up(metrics: dict[str, float]) -> bool:
    return metrics.get(RESTART_CAPPED) == 1 and metrics.get(VLLM_UP) == 0


def test_a_member_that_never_starts_stops_the_restarts_at_the_cap(clean_stack):
    plan = fault_plan(maxRestarts=2)
    # The headless node's ranks overlap the head's: the head refuses it on every start.
    start(plan, lambda node, script: script.replace("--data-parallel-start-rank 2", "--data-parallel-start-rank 1"))
    wait_for(
        lambda: all(given_up(supervisor_metrics(n)) for n in plan.nodes),
        60,
        "every supervisor to give up and stop vllm",
    )
    for i, node in enumerate(plan.nodes):
        assert supervisor_metrics(node)[GROUP_RESTARTS] == 3
        assert "giving up: 2 group restarts in a row (maxRestarts) did not bring the group back" in logs(plan, i)
    time.sleep(2 * SUPERVISION["pollSeconds"] + SUPERVISION["maxBackoffSeconds"])
    assert [supervisor_metrics(n)[GROUP_RESTARTS] for n in plan.nodes] == [3, 3]


# The stall probe, proven: stallSeconds short enough for a test; the confirming one-token request
# then waits max(stallSeconds, 5) s.
STALL_S = 3
STALL_REASON = r"request\(s\) running but no token generated for \d+s \(stallSeconds\)"


@pytest.mark.parametrize("node", [1, 0], ids=["headless", "head"])
def test_a_stalled_engine_under_traffic_brings_the_group_back(clean_stack, node):
    """The stall probe, proven. SIGUSR2 stalls a node's engine: its steps stop, so the head's requests
    stay running and vllm:generation_tokens_total stands still while every process lives and /health
    answers 200, as with real vllm ranks stuck in a collective (HCCL_EXEC_TIMEOUT is 1836 s). Only
    the supervisors' stall probe can see it."""
    plan = fault_plan(stallSeconds=STALL_S)
    serving(plan)
    with Traffic(plan, clients=3, max_tokens=1000, timeout=4):
        time.sleep(1)  # requests in flight: the stuck step's batch is what /metrics keeps showing
        sh(f"kill -USR2 {api_server_pid(plan.nodes[node].container_name)}")
        t0 = time.monotonic()
        elapsed = healed_after(plan, t0)
    assert "stalling (SIGUSR2)" in logs(plan, node)
    assert_group_restarted(plan, STALL_REASON, elapsed)


def test_a_hung_rank_under_traffic_is_caught_by_the_stall_probe(clean_stack):
    """A hung headless rank (SIGUSR1: alive, silent, deaf to SIGTERM) as real vllm shows it: /health
    stays 200 (no heartbeat between DP ranks, vllm #39863) and, with traffic, the head's requests stop
    generating. The stall probe restarts the group; the hung processes need SIGKILL."""
    plan = fault_plan(stallSeconds=STALL_S)
    serving(plan)
    with Traffic(plan, clients=3, max_tokens=1000, timeout=4):
        time.sleep(1)
        sh(f"kill -USR1 {api_server_pid(plan.nodes[1].container_name)}")
        t0 = time.monotonic()
        elapsed = healed_after(plan, t0)
    assert "vllm ignored SIGTERM for 2s; killing it" in logs(plan, 1)
    assert_group_restarted(plan, STALL_REASON, elapsed)


def test_stale_gauges_after_aborted_requests_leave_an_idle_group_alone(clean_stack):
    """vllm #22545: clients that give up mid-generation leave vllm:num_requests_running above 0 on an
    idle engine, with no token generated, until the next request. The stall probe must not restart
    a healthy group for that: its one-token request completes."""
    plan = fault_plan(stallSeconds=STALL_S)
    serving(plan)
    with Traffic(plan, clients=3, max_tokens=1000, timeout=0.5):
        time.sleep(1.5)  # every request is abandoned after half a second
    head_metrics = f"{plan.head_local_url}/metrics"
    running = re.search(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", get(head_metrics)[1], re.M)
    assert float(running.group(1)) >= 1  # stale: nothing runs
    wait_for(
        lambda: "(stale gauges)" in logs(plan, 0) + logs(plan, 1),
        STALL_S + 4 * SUPERVISION["pollSeconds"] + 10,
        "a supervisor to confirm the suspected stall with a one-token request",
    )
    assert re.search(
        rf"not restarting: \d+ {STALL_REASON}, yet a one-token request completes", logs(plan, 0) + logs(plan, 1)
    )
    time.sleep(STALL_S + 2)
    for i, node in enumerate(plan.nodes):
        assert supervisor_metrics(node)[GROUP_RESTARTS] == 0
        assert "group restart" not in logs(plan, i)
    running = re.search(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", get(head_metrics)[1], re.M)
    assert float(running.group(1)) == 0  # the one-token request's steps refreshed the gauges
    assert completes(plan)


STATE_FILE = f"{SUPERVISOR_DIR}/state.json"


def restart_counts(plan) -> list[str]:
    return [sh(f"docker inspect -f '{{{{.RestartCount}}}}' {n.container_name}").stdout.strip() for n in plan.nodes]


def test_a_state_file_left_empty_by_a_power_loss_is_a_restart_not_a_crash_loop(clean_stack):
    plan = fault_plan()
    serving(plan)
    node = plan.nodes[1]
    assert sh(f"docker exec {node.container_name} sh -c ': > {STATE_FILE}'").returncode == 0
    t0 = time.monotonic()
    assert sh(f"docker restart -t 5 {node.container_name}").returncode == 0
    assert_group_restarted(plan, "state file is unreadable|the head's /health failed", healed_after(plan, t0))
    assert "its state file is unreadable" in logs(plan, 1)


def test_a_state_directory_that_cannot_be_written_never_stops_the_group(clean_stack):
    plan = fault_plan(HEAD_EXITS)
    serving(plan)
    for node in plan.nodes:
        # Every write of the state fails from now on, as on a full or read-only disk (root
        # ignores permission bits, not a directory in the way).
        assert sh(f"docker exec {node.container_name} mkdir {STATE_FILE}.tmp").returncode == 0
    t0 = time.monotonic()
    sh(f"kill -KILL {api_server_pid(plan.nodes[1].container_name)}")
    assert_group_restarted(plan, "vllm exited with status", healed_after(plan, t0))
    assert f"cannot save {STATE_FILE}" in logs(plan, 0)
    # PID 1 never died: no container restarted.
    assert restart_counts(plan) == ["0", "0"]


def test_a_head_away_longer_than_the_cap_takes_is_rejoined_when_it_returns(clean_stack):
    # The old protocol counted a restart per barrier timeout and capped after two.
    plan = fault_plan(maxRestarts=1, barrierTimeoutSeconds=2)
    serving(plan)
    assert sh(f"docker stop -t 10 {plan.head.container_name}").returncode == 0
    time.sleep(15)
    metrics = supervisor_metrics(plan.nodes[1])
    assert metrics[RESTART_CAPPED] == 0 and metrics[GROUP_RESTARTS] <= 1
    t0 = time.monotonic()
    assert sh(f"docker start {plan.head.container_name}").returncode == 0
    healed_after(plan, t0)
    settled(plan)
    assert "to answer as this group (not counted as a restart)" in logs(plan, 1)


@pytest.fixture
def metrics_port_blocked():
    """Drops every connection to supervision.metricsPort on this machine (both simulated nodes live
    here), as a firewall between real nodes would; always lifted again."""
    rule = f"INPUT -p tcp --dport {SUPERVISION_METRICS_PORT} -j REJECT --reject-with tcp-reset"
    added = []

    def block():
        assert sh(f"iptables -I {rule}").returncode == 0
        added.append(rule)

    def lift():
        while added:
            sh(f"iptables -D {added.pop()}")

    yield block, lift
    lift()


def test_a_blocked_metrics_port_holds_the_restart_until_the_peers_see_each_other(clean_stack, metrics_port_blocked):
    block, lift = metrics_port_blocked
    plan = fault_plan()
    serving(plan)
    block()
    sh(f"kill -KILL {api_server_pid(plan.nodes[1].container_name)}")
    # Longer than the barrier's timeout: the old protocol started (and counted) a vllm that could not
    # form a group, again and again.
    time.sleep(SUPERVISION["barrierTimeoutSeconds"] + 5)
    for i in range(len(plan.nodes)):
        log = logs(plan, i)
        assert "not counted as a restart" in log, log
        assert "starting generation 1" not in log, log
    t0 = time.monotonic()
    lift()
    healed_after(plan, t0)
    assert [m[GROUP_RESTARTS] for m in settled(plan)] == [1, 1]


def test_a_peer_answering_garbage_commands_nothing_and_crashes_nothing(clean_stack):
    plan = fault_plan()
    serving(plan)
    peer = plan.nodes[1]
    assert sh(f"docker stop -t 10 {peer.container_name}").returncode == 0
    answers = [
        '{"gen": "1", "reason": "x", "phase": "serving"}',
        '{"gen": Infinity, "reason": "x", "phase": "stopping", "consecutive": 0}',
        json.dumps({"group": "another", "gen": 99, "reason": "x", "phase": "stopping", "consecutive": 0}),
        "<html>proxy error</html>",
    ]
    impostor = subprocess.Popen(
        [sys.executable, "-c", GARBAGE_SERVER, peer.ip, str(SUPERVISION_METRICS_PORT), json.dumps(answers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(SUPERVISION["barrierTimeoutSeconds"] + 5)
        head = supervisor_metrics(plan.head)
        assert head[GENERATION] <= 1 and head[RESTART_CAPPED] == 0
        assert "Traceback" not in logs(plan, 0)
    finally:
        impostor.terminate()
        impostor.wait(10)
    t0 = time.monotonic()
    assert sh(f"docker start {peer.container_name}").returncode == 0
    healed_after(plan, t0)
    settled(plan)
    assert restart_counts(plan) == ["0", "0"]


# Answers every GET with the next of the given bodies, as anything squatting on a peer's port might.
GARBAGE_SERVER = """
import itertools, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
bodies = itertools.cycle(json.loads(sys.argv[3]))
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        data = next(bodies).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""


def test_a_rolling_replacement_never_mixes_old_and_new_containers(clean_stack):
    old, new = fault_plan(), fault_plan(groupEpoch=1)
    serving(old)
    # `pulumi up` replaces each node's container on its own schedule (an image pull can take long):
    # for a while the new head runs beside the old headless node.
    sh(f"docker rm -f {old.head.container_name}")
    start(replace(new, nodes=new.nodes[:1]))
    time.sleep(2 * LOAD_S)
    sh(f"docker rm -f {old.nodes[1].container_name}")
    start(replace(new, nodes=new.nodes[1:]))
    ready = wait_ready(new, timeout=60)
    assert ready.returncode == 0, ready.stderr
    # The new group formed on its first start: nothing followed the old container's generations.
    assert [m[GROUP_RESTARTS] for m in settled(new)] == [0, 0]
