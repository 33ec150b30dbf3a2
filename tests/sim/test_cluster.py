"""Head + headless data-parallel handshake and the HTTP API on loopback."""

import signal
import time

import pytest
from simhelpers import MODEL, SERVED, free_port, http, wait_for

PROMPT = "The future of AI is"


def dp_args(dp_port, dp=4, local=2, start=0, headless=False, http_port=None, extra=()):
    a = [
        "serve",
        MODEL,
        "--served-model-name",
        SERVED,
        "--tensor-parallel-size",
        "1",
        "--data-parallel-size",
        str(dp),
        "--data-parallel-size-local",
        str(local),
        "--data-parallel-start-rank",
        str(start),
        "--data-parallel-address",
        "127.0.0.1",
        "--data-parallel-rpc-port",
        str(dp_port),
        "--max-model-len",
        "4096",
        "--enable-expert-parallel",
        "--quantization",
        "ascend",
        *extra,
    ]
    if headless:
        a.append("--headless")
    else:
        a += ["--host", "127.0.0.1", "--port", str(http_port)]
    return a


def health(port):
    return http("GET", f"http://127.0.0.1:{port}/health", timeout=2)[0]


@pytest.fixture
def cluster(sim):
    """A ready 2-node cluster: head ranks 0-1 on 127.0.0.1, headless 2-3 on 127.0.0.2."""
    hp, dpp = free_port(), free_port()
    head = sim.start(dp_args(dpp, http_port=hp), ip="127.0.0.1", node="a")
    wait_for(lambda: health(hp) == 503, 10, what="head HTTP up (503)")
    worker = sim.start(dp_args(dpp, start=2, headless=True), ip="127.0.0.2", node="b")
    wait_for(lambda: health(hp) == 200, 10, what="/health 200")
    return sim, head, worker, hp, dpp


def test_handshake_ready_models_and_completion(cluster):
    sim, head, worker, hp, dpp = cluster
    assert "vllm-sim: rank 2-3 joined from 127.0.0.2" in head.log
    assert "vllm-sim: all 4 data-parallel ranks joined; ready" in head.log
    st, models = http("GET", f"http://127.0.0.1:{hp}/v1/models")
    assert st == 200
    assert models["data"][0]["id"] == SERVED
    assert models["data"][0]["root"] == MODEL
    assert models["data"][0]["max_model_len"] == 4096
    body = {"model": SERVED, "prompt": PROMPT, "max_tokens": 50, "temperature": 0}
    st, r1 = http("POST", f"http://127.0.0.1:{hp}/v1/completions", body)
    assert st == 200, r1
    assert r1["object"] == "text_completion" and r1["model"] == SERVED
    assert r1["usage"] == {"prompt_tokens": 5, "completion_tokens": 50, "total_tokens": 55}
    text = r1["choices"][0]["text"]
    assert len(text.split()) == 50
    assert text.startswith(" but attention the by tensor cache is as")  # pinned
    st, r2 = http("POST", f"http://127.0.0.1:{hp}/v1/completions", body)
    assert r2["choices"][0]["text"] == text and r2["id"] != r1["id"]
    # chat
    st, c = http(
        "POST",
        f"http://127.0.0.1:{hp}/v1/chat/completions",
        {"model": SERVED, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 7},
    )
    assert st == 200 and c["object"] == "chat.completion"
    assert c["usage"]["completion_tokens"] == 7
    assert c["choices"][0]["message"]["role"] == "assistant"


def test_errors_and_metrics(cluster):
    sim, head, worker, hp, dpp = cluster
    base = f"http://127.0.0.1:{hp}"
    st, e = http("POST", f"{base}/v1/completions", {"model": "gpt-4", "prompt": "x"})
    assert st == 404 and "does not exist" in e["message"]
    st, e = http("POST", f"{base}/v1/completions", {"model": SERVED, "prompt": PROMPT, "max_tokens": 4095})
    assert st == 400 and "maximum context length is 4096" in e["message"]
    http("POST", f"{base}/v1/completions", {"model": SERVED, "prompt": PROMPT, "max_tokens": 3})
    st, text = http("GET", f"{base}/metrics")
    assert st == 200
    lbl = f'model_name="{SERVED}"'
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting"):
        assert f"{name}{{{lbl}}} 0.0" in text
    assert f"vllm:prompt_tokens_total{{{lbl}}} 5.0" in text
    assert f"vllm:generation_tokens_total{{{lbl}}} 3.0" in text
    assert f'vllm:request_success_total{{finished_reason="length",{lbl}}} 1.0' in text
    assert f"vllm:time_to_first_token_seconds_count{{{lbl}}} 1.0" in text
    assert 'vllm:time_to_first_token_seconds_bucket{le="+Inf"' in text
    assert f"vllm:time_to_first_token_seconds_sum{{{lbl}}}" in text


def test_killing_headless_turns_health_503(cluster):
    sim, head, worker, hp, dpp = cluster
    worker.killpg(signal.SIGKILL)  # the node's vllm dies whole, its engine cores too
    wait_for(lambda: health(hp) == 503, 8, what="/health 503 after losing rank")
    assert "vllm-sim: ERROR: data-parallel rank 2-3 from 127.0.0.2 lost" in head.log
    time.sleep(0.3)
    assert health(hp) == 503  # stays unhealthy
    st, _ = http("POST", f"http://127.0.0.1:{hp}/v1/completions", {"model": SERVED, "prompt": "x", "max_tokens": 1})
    assert st == 503


def test_headless_exits_when_head_dies(cluster):
    sim, head, worker, hp, dpp = cluster
    head.kill(signal.SIGKILL)
    rc = worker.wait(10)
    assert rc != 0
    assert "vllm-sim: ERROR: lost DP head at 127.0.0.1" in worker.log


def test_mismatched_dp_size_and_overlapping_ranks_rejected(sim):
    hp, dpp = free_port(), free_port()
    head = sim.start(dp_args(dpp, http_port=hp), ip="127.0.0.1", node="a")
    wait_for(lambda: health(hp) == 503, 10, what="head up")
    # dp size 8 vs 4
    bad = sim.start(dp_args(dpp, dp=8, start=2, headless=True), ip="127.0.0.2", node="b")
    assert bad.wait(10) != 0
    assert "rejected this node: data-parallel-size mismatch" in bad.log
    head.wait_log("vllm-sim: ERROR: rejected data-parallel peer 127.0.0.2: data-parallel-size mismatch")
    # start rank 1 overlaps the head's ranks 0-1
    bad2 = sim.start(dp_args(dpp, start=1, headless=True), ip="127.0.0.3", node="c")
    assert bad2.wait(10) != 0
    assert "overlap already joined rank(s) 1" in bad2.log
    head.wait_log("rejected data-parallel peer 127.0.0.3: ranks 1-2 overlap")
    # different tensor parallel size
    tp = dp_args(dpp, start=2, headless=True)
    tp[tp.index("--tensor-parallel-size") + 1] = "2"
    bad3 = sim.start(tp, ip="127.0.0.4", npus=4, node="d")
    assert bad3.wait(10) != 0
    assert "--tensor-parallel-size mismatch" in bad3.log
    assert health(hp) == 503
    # a correct joiner still completes the cluster
    sim.start(dp_args(dpp, start=2, headless=True), ip="127.0.0.2", node="b")
    wait_for(lambda: health(hp) == 200, 10, what="ready after good joiner")


def test_headless_gives_up_when_head_unreachable(sim):
    dpp = free_port()
    p = sim.start(
        dp_args(dpp, start=2, headless=True),
        ip="127.0.0.2",
        extra={"VLLM_SIM_JOIN_TIMEOUT": "1.5", "VLLM_SIM_LOAD_SECONDS": "0"},
    )
    assert p.wait(10) != 0
    assert f"vllm-sim: ERROR: could not reach DP head at 127.0.0.1:{dpp}" in p.log


def test_api_key(sim):
    hp = free_port()
    p = sim.start(["serve", MODEL, "--host", "127.0.0.1", "--port", str(hp), "--api-key", "s3"], npus=1)
    wait_for(lambda: health(hp) == 200, 10, what="single node ready")
    base = f"http://127.0.0.1:{hp}"
    st, body = http("GET", f"{base}/v1/models")
    assert st == 401 and body == {"error": "Unauthorized"}
    st, _ = http("POST", f"{base}/v1/completions", {"prompt": "x"}, headers={"Authorization": "Bearer wrong"})
    assert st == 401
    st, body = http("GET", f"{base}/v1/models", headers={"Authorization": "Bearer s3"})
    assert st == 200 and body["data"][0]["id"] == MODEL  # default served name = model
    assert http("GET", f"{base}/metrics")[0] == 200  # stays open
    assert "vllm-sim: all 1 data-parallel ranks joined; ready" in p.log


def test_api_key_from_env(sim):
    hp = free_port()
    sim.start(["serve", MODEL, "--host", "127.0.0.1", "--port", str(hp)], npus=1, extra={"VLLM_API_KEY": "envkey"})
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    assert http("GET", f"http://127.0.0.1:{hp}/v1/models")[0] == 401
    assert http("GET", f"http://127.0.0.1:{hp}/v1/models", headers={"Authorization": "Bearer envkey"})[0] == 200


def test_a_silent_peer_is_lost_in_heartbeat_timeout_mode(sim):
    """A joined peer that stops sending heartbeats loses its ranks after 5 s in the heartbeat-timeout
    mode (by default nobody notices, as in real vllm: test_modes)."""
    import json
    import socket

    hp, dpp = free_port(), free_port()
    head = sim.start(
        dp_args(dpp, dp=2, local=1, http_port=hp), ip="127.0.0.1", npus=1, extra={"VLLM_SIM_MODE": "heartbeat-timeout"}
    )
    wait_for(lambda: health(hp) == 503, 10, what="head up")
    hello = {
        "type": "hello",
        "dp_size": 2,
        "start_rank": 1,
        "local": 1,
        "tp": 1,
        "model": MODEL,
        "served_model_name": SERVED,
        "quantization": "ascend",
        "enable_expert_parallel": True,
        "max_model_len": 4096,
    }
    with socket.create_connection(("127.0.0.1", dpp), timeout=5) as s:
        s.sendall((json.dumps(hello) + "\n").encode())
        reply = json.loads(s.makefile().readline())
        assert reply == {"type": "welcome", "ranks": [1, 1]}
        wait_for(lambda: health(hp) == 200, 5, what="ready with silent peer")
        t0 = time.monotonic()
        wait_for(lambda: health(hp) == 503, 9, what="503 after heartbeat timeout")
        assert time.monotonic() - t0 > 3
    assert "lost (heartbeat timeout)" in head.log


def test_streaming_and_sigterm(sim):
    import urllib.request

    hp = free_port()
    p = sim.start(["serve", MODEL, "--host", "127.0.0.1", "--port", str(hp)], npus=1)
    wait_for(lambda: health(hp) == 200, 10, what="ready")
    req = urllib.request.Request(
        f"http://127.0.0.1:{hp}/v1/completions",
        method="POST",
        data=b'{"prompt": "hi", "max_tokens": 4, "stream": true}',
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        lines = [ln.decode().strip() for ln in r if ln.strip()]
    assert lines[-1] == "data: [DONE]" and len(lines) == 5
    p.kill(signal.SIGTERM)
    assert p.p.returncode == 0
