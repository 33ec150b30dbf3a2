"""A stalled engine (SIGUSR2) and stale scheduler gauges, as a supervisor's stall probe sees them
on the head's /metrics: requests running, the generation token counter frozen, /health 200."""

import signal
import socket
import time

import pytest
from simhelpers import SERVED, free_port, http, in_background, metric, stream, wait_for
from test_cluster import health
from test_modes import start_cluster

RUNNING = "vllm:num_requests_running"
TOKENS = "vllm:generation_tokens_total"


def single(sim, **env):
    hp = free_port()
    p = sim.start(
        ["serve", sim.model, "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(hp)], npus=1, extra=env
    )
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    return p, hp


def one_token(hp, timeout=5.0):
    return http("POST", f"http://127.0.0.1:{hp}/v1/completions", {"prompt": "ping", "max_tokens": 1}, timeout=timeout)


def assert_stalled(hp, running):
    """Requests running, no token for a second, /health 200, and a new request cannot finish."""
    time.sleep(0.3)
    tokens = metric(hp, TOKENS)
    time.sleep(1.0)
    assert metric(hp, TOKENS) == tokens > 0
    assert metric(hp, RUNNING) == running
    assert health(hp) == 200
    assert one_token(hp, timeout=1.0) == (None, None)


def test_a_stalled_engine_keeps_its_requests_running_without_tokens(sim):
    p, hp = single(sim)
    for _ in range(3):
        in_background(hp)
    wait_for(lambda: metric(hp, RUNNING) == 3 and metric(hp, TOKENS) > 30, 5, what="3 requests generating")
    p.p.send_signal(signal.SIGUSR2)
    p.wait_log("stalling (SIGUSR2)")
    assert_stalled(hp, 3)
    # Clients giving up change nothing: the stuck step never publishes again.
    assert metric(hp, RUNNING) == 3
    p.p.send_signal(signal.SIGTERM)  # a stalled engine still stops
    assert p.wait(10) == 0
    wait_for(lambda: not p.group_alive(), 5, what="the engine core to stop too")


def test_a_stalled_headless_rank_stalls_the_head_until_the_collective_times_out(sim):
    head, worker, hp = start_cluster(sim, HCCL_EXEC_TIMEOUT="4")
    in_background(hp)
    in_background(hp)
    wait_for(lambda: metric(hp, RUNNING) == 2 and metric(hp, TOKENS) > 30, 5, what="2 requests generating")
    worker.p.send_signal(signal.SIGUSR2)  # the API server passes it to its engine cores
    wait_for(lambda: worker.log.count("stalling (SIGUSR2)") == 3, 5, what="the headless main and 2 cores to stall")
    assert_stalled(hp, 2)
    assert head.wait(10) == 1
    assert "HCCL collective of data-parallel step" in head.log
    assert "Notify record from remote rank: [2-3]." in head.log
    assert worker.wait(10) == 1  # its head went away
    assert "lost DP head at 127.0.0.1" in worker.log


def abandon(hp, streaming: bool):
    """A request whose client goes away mid-generation."""
    if streaming:
        response = stream(hp)
        response.readline()
        response.close()
    else:
        body = b'{"prompt": "hi", "max_tokens": 4000}'
        with socket.create_connection(("127.0.0.1", hp)) as s:
            s.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.3)


@pytest.mark.parametrize("streaming", [True, False])
def test_aborted_requests_leave_the_running_gauge_stale(sim, streaming):
    """vllm #22545: after every running request was aborted no engine step runs, so nothing
    publishes the scheduler's gauges again; an idle engine shows requests running, no tokens."""
    p, hp = single(sim)
    abandon(hp, streaming)
    p.wait_log("Aborted request", timeout=5)
    time.sleep(0.3)
    tokens = metric(hp, TOKENS)
    time.sleep(0.5)
    assert metric(hp, RUNNING) == 1
    assert metric(hp, TOKENS) == tokens
    assert health(hp) == 200
    # Nothing is stuck: a request completes, and its steps refresh the gauges.
    status, body = one_token(hp)
    assert status == 200, body
    assert metric(hp, RUNNING) == 0


def test_fresh_running_gauge_mode_drops_aborted_requests_at_once(sim):
    p, hp = single(sim, VLLM_SIM_MODE="fresh-running-gauge")
    abandon(hp, streaming=True)
    p.wait_log("Aborted request", timeout=5)
    wait_for(lambda: metric(hp, RUNNING) == 0, 2, what="the gauge to drop the aborted request")


def test_the_stall_signal_is_per_node(sim):
    """SIGUSR2 on the head stalls the steps it drives; its headless ranks keep answering."""
    head, worker, hp = start_cluster(sim)
    in_background(hp)
    wait_for(lambda: metric(hp, TOKENS) > 30, 5, what="tokens")
    head.p.send_signal(signal.SIGUSR2)
    head.wait_log("stalling (SIGUSR2)")
    assert_stalled(hp, 1)
    assert "stalling" not in worker.log and worker.p.poll() is None
