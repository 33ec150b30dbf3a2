"""The ways real vllm has been seen to fail, per run (VLLM_SIM_MODE), a hung rank (SIGUSR1), the
collectives that time out after HCCL_EXEC_TIMEOUT, and the process metrics a supervisor reads
off the head's /metrics."""

import os
import re
import signal
import time

from simhelpers import free_port, http, stream, wait_for
from test_cluster import dp_args, health


def start_cluster(sim, mode="", **env):
    hp, dpp = free_port(), free_port()
    extra = {"VLLM_SIM_MODE": mode, **env}
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
    worker.killpg(signal.SIGKILL)
    assert head.wait(10) == 1
    assert (
        "vllm-sim: ERROR: data-parallel rank 2-3 from 127.0.0.2 lost (connection closed); engine core died" in head.log
    )
    wait_for(lambda: not head.group_alive(), 5, what="the head's engine cores to exit with it")


def test_headless_waits_forever_when_its_head_dies(sim):
    head, worker, hp = start_cluster(sim, "headless-waits-for-head")
    head.kill(signal.SIGKILL)
    worker.wait_log("vllm-sim: ERROR: lost DP head at 127.0.0.1")
    worker.wait_log("waiting for the DP head to come back")
    time.sleep(1)
    assert worker.p.poll() is None


def test_a_hung_rank_goes_unnoticed_until_a_collective_times_out(sim):
    """Real vllm: /health stays 200 for a hung remote engine (no heartbeat between DP ranks); an
    idle group runs no collective, so nothing times out until a request makes the ranks step."""
    head, worker, hp = start_cluster(sim, HCCL_EXEC_TIMEOUT="2")
    worker.p.send_signal(signal.SIGUSR1)
    worker.wait_log("hanging (SIGUSR1)")
    time.sleep(5.5)  # past the old 5 s heartbeat timeout, and past HCCL_EXEC_TIMEOUT: idle
    assert health(hp) == 200
    assert head.p.poll() is None and "lost" not in head.log
    worker.p.send_signal(signal.SIGTERM)  # a hung rank ignores it
    t0 = time.monotonic()
    assert http("POST", f"http://127.0.0.1:{hp}/v1/completions", {"prompt": "x", "max_tokens": 3}, timeout=1) == (
        None,
        None,
    )
    assert head.wait(10) == 1
    assert 1.5 < time.monotonic() - t0 < 6
    assert re.search(
        r"vllm-sim: ERROR: \(EngineCore_DP0 pid=\d+\) RuntimeError: HCCL collective of data-parallel step 1 "
        r"timed out after 2s \(HCCL_EXEC_TIMEOUT\)\. EI0002: .* from remote rank: \[2-3\]\.",
        head.log,
    ), head.log
    assert worker.p.poll() is None  # still hung


def test_a_hung_head_times_out_the_headless_ranks_in_a_collective(sim):
    head, worker, hp = start_cluster(sim, HCCL_EXEC_TIMEOUT="1.5")
    with stream(hp) as response:
        response.readline()
        head.p.send_signal(signal.SIGUSR1)
        head.wait_log("hanging (SIGUSR1)")
        assert http("GET", f"http://127.0.0.1:{hp}/health", timeout=1) == (None, None)
        assert worker.wait(8) == 1
    assert "vllm-sim: ERROR: RuntimeError: HCCL collective timed out after 1.5s (HCCL_EXEC_TIMEOUT)" in worker.log
    assert "engine core proc EngineCore_DP2 died (exit code 1)" in worker.log
    assert head.p.poll() is None


def test_a_hung_head_loses_its_headless_ranks_in_heartbeat_timeout_mode(sim):
    head, worker, hp = start_cluster(sim, "heartbeat-timeout")
    head.p.send_signal(signal.SIGUSR1)
    head.wait_log("hanging (SIGUSR1)")
    assert http("GET", f"http://127.0.0.1:{hp}/health", timeout=1) == (None, None)
    worker.wait_log("lost DP head at 127.0.0.1", timeout=9)


def test_a_frozen_headless_group_is_lost_in_heartbeat_timeout_mode(sim):
    """SIGSTOP to the headless `vllm serve` alone freezes nothing that matters (its engine cores
    carry the DP connection); to its whole process group it freezes the rank."""
    head, worker, hp = start_cluster(sim, "head-exits-on-lost-rank,heartbeat-timeout")
    os.killpg(worker.p.pid, signal.SIGSTOP)
    assert head.wait(10) == 1
    assert "data-parallel rank 2-3 from 127.0.0.2 lost (heartbeat timeout); engine core died" in head.log


def test_unknown_mode_is_refused(sim):
    rc, log = sim.run(dp_args(free_port(), http_port=free_port()), extra={"VLLM_SIM_MODE": "head-explodes"})
    assert rc == 1
    assert (
        "vllm-sim: ERROR: unknown VLLM_SIM_MODE head-explodes; known: head-exits-on-lost-rank, "
        "headless-waits-for-head, heartbeat-timeout, fresh-running-gauge" in log
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
    first.killpg(signal.SIGKILL)  # the engine core too, or it keeps the NPU
    time.sleep(1.1)  # the start time has a resolution of one clock tick
    sim.start(args, npus=1)
    wait_for(lambda: health(hp) == 200, 10, what="ready again")
    assert start_time(hp) > before
