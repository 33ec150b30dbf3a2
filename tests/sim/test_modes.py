"""The ways real vllm has been seen to fail, per run (VLLM_SIM_MODE), a hung rank (SIGUSR1),
and the process metrics a supervisor reads off the head's /metrics."""

import re
import signal
import time

from simhelpers import free_port, http, wait_for
from test_cluster import dp_args, health


def start_cluster(sim, mode=""):
    hp, dpp = free_port(), free_port()
    extra = {"VLLM_SIM_MODE": mode}
    head = sim.start(dp_args(dpp, http_port=hp), ip="127.0.0.1", node="a", extra=extra)
    wait_for(lambda: health(hp) == 503, 10, what="head HTTP up (503)")
    worker = sim.start(dp_args(dpp, start=2, headless=True), ip="127.0.0.2", node="b", extra=extra)
    wait_for(lambda: health(hp) == 200, 10, what="/health 200")
    return head, worker, hp


def start_time(hp) -> float:
    status, text = http("GET", f"http://127.0.0.1:{hp}/metrics")
    assert status == 200
    return float(re.search(r"^process_start_time_seconds (\S+)$", text, re.M).group(1))


def test_head_exits_when_it_loses_a_rank(sim):
    head, worker, hp = start_cluster(sim, "head-exits-on-lost-rank")
    worker.kill(signal.SIGKILL)
    assert head.wait(10) == 1
    assert (
        "vllm-sim: ERROR: data-parallel rank 2-3 from 127.0.0.2 lost (connection closed); engine core died" in head.log
    )


def test_headless_waits_forever_when_its_head_dies(sim):
    head, worker, hp = start_cluster(sim, "headless-waits-for-head")
    head.kill(signal.SIGKILL)
    worker.wait_log("vllm-sim: ERROR: lost DP head at 127.0.0.1")
    worker.wait_log("waiting for the DP head to come back")
    time.sleep(1)
    assert worker.p.poll() is None


def test_a_hung_rank_stops_heartbeats_and_ignores_sigterm(sim):
    head, worker, hp = start_cluster(sim)
    worker.p.send_signal(signal.SIGUSR1)
    worker.wait_log("hanging (SIGUSR1)")
    wait_for(lambda: health(hp) == 503, 9, what="the head to lose the hung rank's heartbeats")
    assert "lost (heartbeat timeout)" in head.log
    worker.p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert worker.p.poll() is None


def test_a_hung_head_stops_answering_http(sim):
    head, worker, hp = start_cluster(sim)
    head.p.send_signal(signal.SIGUSR1)
    head.wait_log("hanging (SIGUSR1)")
    assert http("GET", f"http://127.0.0.1:{hp}/health", timeout=1) == (None, None)
    worker.wait_log("lost DP head at 127.0.0.1", timeout=9)


def test_unknown_mode_is_refused(sim):
    rc, log = sim.run(dp_args(free_port(), http_port=free_port()), extra={"VLLM_SIM_MODE": "head-explodes"})
    assert rc == 1
    assert (
        "vllm-sim: ERROR: unknown VLLM_SIM_MODE head-explodes; known: head-exits-on-lost-rank, headless-waits-for-head"
        in log
    )


def test_process_start_time_changes_when_the_head_restarts(sim):
    hp = free_port()
    args = ["serve", sim.model, "--host", "127.0.0.1", "--port", str(hp)]
    first = sim.start(args, npus=1)
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    before = start_time(hp)
    assert abs(before - time.time()) < 30
    status, text = http("GET", f"http://127.0.0.1:{hp}/metrics")
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert re.search(rf"^{name} \d", text, re.M), name
    first.kill(signal.SIGKILL)
    time.sleep(1.1)  # the start time has a resolution of one clock tick
    sim.start(args, npus=1)
    wait_for(lambda: health(hp) == 200, 10, what="ready again")
    assert start_time(hp) > before
