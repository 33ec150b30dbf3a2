"""vllm's process tree: `vllm serve` (the API server, or a headless node's process manager) and one
VLLM::EngineCore_DP<rank> child per local DP rank, in its process group, holding the NPUs. A
SIGKILLed API server leaves them behind holding the NPUs (vllm #55510), and the next `vllm serve`
on those NPUs fails at start-up."""

import os
import signal
import time
from pathlib import Path

from simhelpers import SERVED, free_port, http, wait_for
from test_cluster import dp_args, health
from test_modes import start_cluster

OOM = (
    "ValueError: Free memory on device (6.1/60.96 GiB) on startup is less than desired GPU memory "
    "utilization (0.9, 54.86 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes."
)
FAILED = "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): "


def serve_args(hp, *extra):
    return ["serve", "/models/DeepSeek-R1-W8A8", "--served-model-name", SERVED, "--host", "127.0.0.1",
            "--port", str(hp), *extra]  # fmt: skip


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def completes(hp) -> bool:
    body = {"prompt": "x", "max_tokens": 3}
    return http("POST", f"http://127.0.0.1:{hp}/v1/completions", body, timeout=3)[0] == 200


def test_one_engine_core_per_local_rank_in_the_api_servers_process_group(sim):
    hp = free_port()
    p = sim.start(serve_args(hp, "--data-parallel-size", "2"), npus=2)
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    cores = p.engine_cores()
    assert len(cores) == 2
    assert set(p.members()) == {p.p.pid, *cores}
    assert all(ppid(c) == p.p.pid for c in cores)
    assert [Path(f"/proc/{c}/comm").read_text().strip() for c in cores] == ["VLLM::EngineCor"] * 2
    assert os.getpgid(p.p.pid) == p.p.pid  # started in a session of its own, as the supervisor does
    assert "engine core(s) EngineCore_DP0 pid=" in p.log and ", EngineCore_DP1 pid=" in p.log


def test_a_sigkilled_api_server_leaves_its_engine_core_holding_the_npu(sim):
    hp = free_port()
    first = sim.start(serve_args(hp), npus=1)
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    (core,) = first.engine_cores()
    first.kill(signal.SIGKILL)
    assert health(hp) is None  # the port is free at once
    time.sleep(0.5)
    assert first.engine_cores() == [core]  # an orphan now, still holding the NPU
    second = sim.start(serve_args(hp), npus=1)
    assert second.wait(10) == 1
    assert OOM in second.log
    assert "EngineCore_DP0 pid=" in second.log and "EngineCore failed to start." in second.log
    assert FAILED + "{'EngineCore_DP0': 1}" in second.log
    assert not second.group_alive()
    # Once the orphan is gone, the NPU is free again.
    first.killpg(signal.SIGKILL)
    third = sim.start(serve_args(hp), npus=1)
    wait_for(lambda: health(hp) == 200, 10, what="ready on the freed NPU")
    assert completes(hp) and third.p.poll() is None


def test_sigterm_stops_the_engine_cores_too(sim):
    hp = free_port()
    p = sim.start(serve_args(hp, "--data-parallel-size", "2"), npus=2)
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    p.kill(signal.SIGTERM)  # to the API server alone: it shuts its engine cores down
    assert p.p.returncode == 0
    assert not p.group_alive()
    hp = free_port()
    q = sim.start(serve_args(hp, "--data-parallel-size", "2"), npus=2)
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    q.killpg(signal.SIGTERM, timeout=5)  # to the group, as the supervisor does


def test_a_dead_engine_core_takes_the_api_server_with_it(sim):
    hp = free_port()
    p = sim.start(serve_args(hp, "--data-parallel-size", "2"), npus=2)
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    core = p.engine_cores()[1]
    os.kill(core, signal.SIGKILL)
    assert p.wait(10) == 1
    assert "Engine core proc EngineCore_DP1 died unexpectedly (exit code -9), shutting down client." in p.log
    assert not p.group_alive()


def test_orphans_exit_after_VLLM_SIM_ORPHAN_SECONDS(sim):
    hp = free_port()
    p = sim.start(serve_args(hp), npus=1, extra={"VLLM_SIM_ORPHAN_SECONDS": "0.5"})
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    p.kill(signal.SIGKILL)
    assert p.engine_cores()
    wait_for(lambda: not p.group_alive(), 5, what="the orphaned engine core to exit")
    assert "the API server is gone; exiting (VLLM_SIM_ORPHAN_SECONDS=0.5)" in p.log


def test_a_sigkilled_headless_main_process_leaves_the_group_serving(sim):
    """A headless node's engine cores talk to the head themselves: its main process is not needed."""
    head, worker, hp = start_cluster(sim)
    cores = worker.engine_cores()
    assert len(cores) == 2
    worker.kill(signal.SIGKILL)
    time.sleep(1)
    assert worker.engine_cores() == cores
    assert health(hp) == 200 and completes(hp)
    # A new headless vllm on the node cannot start while they hold its NPUs.
    again = sim.start(worker_args(head), ip="127.0.0.2", node="b")
    assert again.wait(10) == 1
    assert FAILED + "{'EngineCore_DP2': 1, 'EngineCore_DP3': 1}" in again.log


def worker_args(head):
    """The headless node's command line, as the cluster started it (its RPC port)."""
    argv = head.p.args
    rpc = argv[argv.index("--data-parallel-rpc-port") + 1]
    return dp_args(int(rpc), start=2, headless=True)
