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
import re
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest
import yaml
from localstack import STACK, get, logs, sh, start, wait_for, wait_ready
from mocked import PROJECT_DIR

from checks import diagnostics
from core.config import load_config
from core.plan import plan_cluster
from core.stack import stack_file

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


def vllm_pid(node) -> int:
    """The host PID of the node's vllm: the only child of the container's PID 1 (the supervisor)."""
    pid = sh(f"docker inspect -f '{{{{.State.Pid}}}}' {node.container_name}").stdout.strip()
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    assert len(children) == 1, children
    return int(children[0])


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
        if all(supervisor_metrics(n).get("deepseek_supervisor_group_restarts_total", 0) >= 1 for n in plan.nodes):
            if completes(plan):
                return time.monotonic() - since
        time.sleep(0.25)
    pytest.fail(
        f"not serving again within {HEAL_BOUND}s ({HEAL_BOUND // LOAD_S} x the {LOAD_S}s load); logs:\n"
        + "\n".join(logs(plan, i)[-3000:] for i in range(len(plan.nodes)))
    )


def assert_group_restarted(plan, reason: str, elapsed: float):
    for i, node in enumerate(plan.nodes):
        metrics = supervisor_metrics(node)
        assert metrics["deepseek_supervisor_vllm_up"] == 1
        assert metrics["deepseek_supervisor_restart_capped"] == 0
        log = logs(plan, i)
        assert re.search(rf"supervisor\[{node.name}\]: group restart #1 to generation \d+: .*({reason})", log), log
    print(f"healed in {elapsed:.1f}s = {elapsed / LOAD_S:.1f} x the simulated load ({reason})")


@pytest.mark.parametrize("mode", [DEFAULT, HEAD_EXITS])
def test_a_crashed_headless_vllm_brings_the_group_back(clean_stack, mode):
    plan = fault_plan(mode)
    serving(plan)
    t0 = time.monotonic()
    sh(f"kill -KILL {vllm_pid(plan.nodes[1])}")
    # In head-exits mode the head's own exit may be seen first.
    assert_group_restarted(plan, "vllm exited with status (-9|1)", healed_after(plan, t0))


def test_a_rebooted_headless_node_brings_the_group_back(clean_stack, tmp_path):
    plan = fault_plan()
    serving(plan)
    t0 = time.monotonic()
    assert sh(f"docker restart -t 5 {plan.nodes[1].container_name}").returncode == 0
    # Whichever comes first: the rebooted node's supervisor, or the head's failing /health.
    assert_group_restarted(plan, "this container restarted|the head's /health failed", healed_after(plan, t0))

    # The diagnostics bundle reads the same from every node.
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
    assert sum("supervisor: 1 group restart(s), generation 1, vllm up, head healthy" in line for line in summary) == 2
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
    plan = fault_plan(HEAD_EXITS)
    serving(plan)
    t0 = time.monotonic()
    sh(f"kill -STOP {vllm_pid(plan.nodes[1])}")
    assert_group_restarted(plan, "vllm exited with status 1", healed_after(plan, t0))


def test_a_hung_rank_brings_the_group_back(clean_stack):
    plan = fault_plan()
    serving(plan)
    t0 = time.monotonic()
    sh(f"kill -USR1 {vllm_pid(plan.nodes[1])}")  # the process stays; its heartbeats stop
    assert_group_restarted(plan, r"the head's /health failed", healed_after(plan, t0))
    assert "vllm ignored SIGTERM for 2s; killing it" in logs(plan, 1)


def test_a_slow_initial_load_is_left_alone(clean_stack):
    plan = fault_plan(load_s=4 * SUPERVISION["unhealthySeconds"])
    start(plan)
    ready = wait_ready(plan, timeout=SUPERVISION["startGraceSeconds"])
    assert ready.returncode == 0, ready.stderr
    for i, node in enumerate(plan.nodes):
        assert supervisor_metrics(node)["deepseek_supervisor_group_restarts_total"] == 0
        assert "group restart" not in logs(plan, i)


def given_up(metrics: dict[str, float]) -> bool:
    return metrics.get("deepseek_supervisor_restart_capped") == 1 and metrics.get("deepseek_supervisor_vllm_up") == 0


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
        assert supervisor_metrics(node)["deepseek_supervisor_group_restarts_total"] == 3
        assert "giving up: 2 group restarts in a row (maxRestarts) did not bring the group back" in logs(plan, i)
    time.sleep(2 * SUPERVISION["pollSeconds"] + SUPERVISION["maxBackoffSeconds"])
    assert [supervisor_metrics(n)["deepseek_supervisor_group_restarts_total"] for n in plan.nodes] == [3, 3]
