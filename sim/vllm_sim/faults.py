"""The ways real vllm fails that a run can pick (VLLM_SIM_MODE), and the faults a test injects at
run time by signal.

Modes (VLLM_SIM_MODE, a comma list; the default is real vllm's behaviour where it is known):
  head-exits-on-lost-rank   the head exits 1 when a rank's connection drops (its engine core
                            dies and takes the API server with it), instead of /health 503
  headless-waits-for-head   a headless node whose head is gone waits forever, instead of exiting
  heartbeat-timeout         a peer silent for 5 s (a hung rank) counts as lost: the head's
                            /health turns 503 and a headless node exits. Real vllm watches no
                            such heartbeat (its /health stays 200 for a hung or remote engine,
                            vllm #39863); this is the simulator's old, faster behaviour
  fresh-running-gauge       an aborted request leaves vllm:num_requests_running at once (vllm
                            with #22545 fixed); by default the gauges keep the value of the last
                            engine step, stale after all running requests were aborted

Signals (to the `vllm serve` process; it forwards them to its engine-core processes):
  SIGUSR1  hang: the process stays but stops everything (heartbeats, HTTP answers, engine
           steps) and ignores SIGTERM; only SIGKILL ends it
  SIGUSR2  stall: the engine stops stepping (a wedged NPU kernel or collective) while the
           process keeps answering HTTP (/health 200) and heartbeats; running requests stay
           running, no token comes out, SIGTERM still stops it
"""

import os
import signal
import threading

from vllm_sim.log import Fatal, log

MODES = ("head-exits-on-lost-rank", "headless-waits-for-head", "heartbeat-timeout", "fresh-running-gauge")

HUNG = threading.Event()
STALLED = threading.Event()


def run_modes() -> set[str]:
    modes = {m.strip() for m in os.environ.get("VLLM_SIM_MODE", "").split(",") if m.strip()}
    unknown = sorted(modes - set(MODES))
    if unknown:
        raise Fatal(f"unknown VLLM_SIM_MODE {', '.join(unknown)}; known: {', '.join(MODES)}")
    return modes


def hccl_exec_timeout() -> float:
    """CANN's HCCL_EXEC_TIMEOUT: how long a rank waits in a collective for its peers (seconds;
    default 1836 on Atlas A2/A3, 0 = never)."""
    raw = os.environ.get("HCCL_EXEC_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else 1836.0
    except ValueError:
        raise Fatal(f"HCCL_EXEC_TIMEOUT={raw!r} is not a number of seconds") from None
    if value < 0:
        raise Fatal(f"HCCL_EXEC_TIMEOUT={raw!r} must be >= 0 (0: never time out)")
    return value


def install_triggers(forward=None) -> None:
    """SIGUSR1 hangs this process, SIGUSR2 stalls its engine; `forward(signum)` passes the signal
    on (the API server to its engine cores)."""

    def hang(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        HUNG.set()
        log("hanging (SIGUSR1): heartbeats and HTTP answers stop; only SIGKILL ends this process")
        if forward:
            forward(signum)

    def stall(signum, frame):
        STALLED.set()
        log("stalling (SIGUSR2): engine steps stop; requests stay running, no token comes out")
        if forward:
            forward(signum)

    signal.signal(signal.SIGUSR1, hang)
    signal.signal(signal.SIGUSR2, stall)


def stall_if_hung() -> None:
    if HUNG.is_set():
        threading.Event().wait()


def wedged() -> bool:
    return HUNG.is_set() or STALLED.is_set()


def block_if_wedged() -> None:
    """An engine step on a hung or stalled rank never completes."""
    if wedged():
        threading.Event().wait()
