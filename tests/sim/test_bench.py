"""`vllm bench serve` stand-in against a single-node simulated server."""

import json
import re
import subprocess
import sys

from simhelpers import MODEL, VLLM, free_port, http, wait_for

KEYS = [
    "date",
    "backend",
    "model_id",
    "num_prompts",
    "request_rate",
    "completed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "p99_tpot_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "p99_itl_ms",
    "max_concurrency",
    "duration",
    "failed",
]


def test_bench_writes_result(sim, tmp_path):
    hp = free_port()
    sim.start(
        ["serve", MODEL, "--served-model-name", "ds", "--host", "127.0.0.1", "--port", str(hp), "--api-key", "k"],
        npus=1,
    )
    wait_for(lambda: http("GET", f"http://127.0.0.1:{hp}/health", timeout=2)[0] == 200, 10, what="server ready")
    out = tmp_path / "results"
    env = sim.env(npus=1)
    env.update({"OPENAI_API_KEY": "k", "VLLM_SIM_BENCH_TIME_SCALE": "10"})
    r = subprocess.run(
        [
            sys.executable,
            str(VLLM),
            "bench",
            "serve",
            "--backend",
            "vllm",
            "--base-url",
            f"http://127.0.0.1:{hp}",
            "--model",
            MODEL,
            "--served-model-name",
            "ds",
            "--dataset-name",
            "random",
            "--random-input",
            "32",
            "--random-output-len",
            "8",
            "--num-prompts",
            "12",
            "--request-rate",
            "5",
            "--max-concurrency",
            "4",
            "--seed",
            "1",
            "--save-result",
            "--result-dir",
            str(out),
            "--percentile-metrics",
            "ttft,tpot,itl,e2el",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "============ Serving Benchmark Result ============" in r.stdout
    for label in (
        "Successful requests:",
        "Benchmark duration (s):",
        "Request throughput (req/s):",
        "Output token throughput (tok/s):",
        "Mean TTFT (ms):",
        "Median TTFT (ms):",
        "P99 TTFT (ms):",
        "Mean TPOT (ms):",
        "P99 ITL (ms):",
        "Mean E2EL (ms):",
    ):
        assert label in r.stdout
    assert re.search(r"Successful requests:\s+12\b", r.stdout)
    files = list(out.iterdir())
    assert len(files) == 1
    assert re.fullmatch(r"vllm-5\.0qps-concurrency4-DeepSeek-R1-W8A8-\d{8}-\d{6}\.json", files[0].name)
    res = json.loads(files[0].read_text())
    for k in KEYS:
        assert k in res, k
    assert res["completed"] == 12 and res["failed"] == 0
    assert res["total_input_tokens"] == 12 * 32
    assert res["total_output_tokens"] == 12 * 8
    assert res["request_rate"] == 5.0 and res["model_id"] == MODEL
    assert res["mean_ttft_ms"] > 0 and res["mean_itl_ms"] > 0
    assert "ttfts" not in res  # only with --save-detailed


def test_bench_inf_rate_result_filename_and_model_discovery(sim, tmp_path):
    hp = free_port()
    sim.start(["serve", MODEL, "--host", "127.0.0.1", "--port", str(hp)], npus=1)
    wait_for(lambda: http("GET", f"http://127.0.0.1:{hp}/health", timeout=2)[0] == 200, 10, what="server ready")
    target = tmp_path / "r.json"
    r = subprocess.run(
        [
            sys.executable,
            str(VLLM),
            "bench",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(hp),
            "--endpoint",
            "/v1/chat/completions",
            "--random-input-len",
            "16",
            "--random-output-len",
            "4",
            "--num-prompts",
            "5",
            "--save-result",
            "--result-filename",
            str(target),
        ],
        env=sim.env(npus=1),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(target.read_text())
    assert res["request_rate"] == "inf" and res["completed"] == 5
    assert res["model_id"] == MODEL and res["max_concurrency"] is None


def test_bench_fails_when_server_down(sim):
    r = subprocess.run(
        [
            sys.executable,
            str(VLLM),
            "bench",
            "serve",
            "--port",
            str(free_port()),
            "--model",
            MODEL,
            "--num-prompts",
            "2",
            "--random-input-len",
            "4",
            "--random-output-len",
            "2",
        ],
        env=sim.env(npus=1),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert re.search(r"Failed requests:\s+2\b", r.stdout)
