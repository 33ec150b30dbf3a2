"""The local stack for real: its per-node scripts (`python -m ops.render local`) run on this
machine's Docker engine with the simulator image, then the deployment's own readiness, smoke and
benchmark commands run against it, and teardown leaves nothing behind.

Needs root and a Docker engine (scripts/docker-engine.sh starts one and builds the images).
Where Docker cannot run these tests skip with the reason; under CI (CI=true) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from localstack import READY_TIMEOUT_S, STACK, health, logs, sh, start, wait_for, wait_ready
from mocked import PROJECT_DIR

from checks import docker, npu_holders, servicechecks
from components.nodecommand import step_command
from core.config import Benchmark
from core.dashboard import CLUSTER, SECTIONS, SERVING
from core.observability import plan_observability
from core.plan import STACK_LABEL, plan_cluster
from core.stack import config_from_stack_file, stack_file


@pytest.fixture(scope="module")
def config():
    return config_from_stack_file(stack_file(PROJECT_DIR, STACK))


@pytest.fixture(scope="module")
def plan(config):
    return plan_cluster(config, stack=STACK)


@pytest.fixture
def cluster(clean_stack, plan):
    return plan


def test_local_stack_serves_the_smoke_request_and_benchmark(cluster):
    plan = cluster
    start(plan)
    ready = wait_ready(plan)
    assert ready.returncode == 0, ready.stderr
    assert servicechecks.ready_after_seconds(ready.stdout) <= READY_TIMEOUT_S

    # The preflight's Docker-side checks, read off this real engine.
    holders = sh(npu_holders.npu_holders_command(STACK_LABEL)).stdout
    assert npu_holders.judge_npu_holders("sim-0", holders, STACK).ok
    assert sorted(npu_holders.judge_npu_holders("sim-0", holders, "another-stack").seen.split("; ")) == [
        "container vllm-sim-0 holds NPU 0-7",
        "container vllm-sim-1 holds NPU 0-7",
    ]
    assert docker.judge_docker("sim-0", sh(docker.docker_version_command()).stdout).ok

    head_log = logs(plan, 0)
    assert "vllm-sim: rank 2-3 joined from 127.0.0.2" in head_log
    assert "vllm-sim: all 4 data-parallel ranks joined; ready" in head_log

    # The smoke test as the program's resource runs it: `python -m checks`, judged inside.
    spec = {
        "node": plan.head.name,
        "nodes": [plan.head.name],
        "url": plan.head_local_url,
        "request": plan.smoke_request,
    }
    env = {**os.environ, "DEPLOY_PYTHON": sys.executable, "NODE_SSH": json.dumps({plan.head.name: None})}
    step = subprocess.run(
        ["/bin/sh", "-c", step_command("smoke-test", spec)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert step.returncode == 0, step.stderr
    smoke = json.loads(step.stdout)["result"]
    assert smoke["completion_tokens"] == 50 and smoke["text"].strip()

    models = json.load(urllib.request.urlopen(f"{plan.head_local_url}/v1/models", timeout=5))
    assert [m["id"] for m in models["data"]] == ["deepseek_r1"]

    settings = Benchmark(numPrompts=20, requestRate=20, resultDir="/tmp/bench")
    bench = sh(
        servicechecks.benchmark_command(
            plan.head.container_name, plan.model, plan.served_model_name, plan.head_local_url, settings, STACK
        ),
        timeout=300,
    )
    assert bench.returncode == 0, bench.stderr
    metrics = servicechecks.parse_benchmark(bench.stdout)
    assert metrics["completed"] == 20 and metrics["output_throughput"] > 0
    assert "Serving Benchmark Result" in bench.stderr


def test_a_mistyped_start_rank_never_becomes_ready(cluster):
    plan = cluster

    def overlap(node, script):
        return script.replace("--data-parallel-start-rank 2", "--data-parallel-start-rank 1")

    start(plan, overlap)
    not_ready = wait_ready(plan, timeout=15)
    assert not_ready.returncode == 1
    assert "not ready after 15s: http://127.0.0.1:8000/health is not 200" in not_ready.stderr
    assert "every node (containers, supervisors, npu-smi, hccn_tool, driver): python -m ops.diagnose local" in (
        not_ready.stderr
    )
    assert health(plan) != 200
    wait_for(lambda: "rejected" in logs(plan, 1), 20, "the headless node to be rejected")
    assert re.search(r"vllm-sim: ERROR: .*overlap", logs(plan, 1))


def test_a_mistyped_rpc_port_never_becomes_ready(cluster):
    plan = cluster

    def wrong_port(node, script):
        if node.role != "headless":
            return script
        script = script.replace("--data-parallel-rpc-port 13389", "--data-parallel-rpc-port 13390")
        # Give up joining quickly instead of the real cluster's long hang.
        return script.replace("set -eu\n", "set -eu\nexport VLLM_SIM_JOIN_TIMEOUT=5\n").replace(
            "docker create \\\n", "docker create -e VLLM_SIM_JOIN_TIMEOUT \\\n"
        )

    start(plan, wrong_port)
    assert wait_ready(plan, timeout=15).returncode == 1
    wait_for(lambda: "could not reach DP head at 127.0.0.1:13390" in logs(plan, 1), 30, "the join to time out")


def start_prometheus(obs, data_dir) -> None:
    """The planned Prometheus container, its files copied in before it starts as the provider's uploads are."""
    c = obs.prometheus
    run = ["docker", "create", "--name", c.name, "--net=host"]
    run += [arg for key, value in c.labels for arg in ("--label", f"{key}={value}")]
    run += [arg for m in c.mounts for arg in ("-v", f"{data_dir}:{m.container_path}")]
    script = [shlex.join(run + [c.image, *c.argv])]
    for upload in c.uploads:
        script.append(f"printf %s {shlex.quote(upload.content)} > {data_dir}/upload")
        script.append(f"docker cp {data_dir}/upload {c.name}:{upload.path}")
    script.append(f"rm {data_dir}/upload && docker start {c.name}")
    result = sh(" && ".join(script))
    assert result.returncode == 0, result.stderr


def prometheus_query(url: str, query: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query}), timeout=5) as r:
        return json.load(r)


def traffic(plan, seconds: float) -> None:
    """Concurrent completions for a while, enough to queue some behind the 16-sequence batch."""
    body = json.dumps({"model": plan.served_model_name, "prompt": "The future of AI is " * 20, "max_tokens": 64})
    deadline = time.monotonic() + seconds

    def client():
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                f"{plan.head_local_url}/v1/completions", body.encode(), {"Content-Type": "application/json"}
            )
            urllib.request.urlopen(request, timeout=30).read()

    clients = [threading.Thread(target=client) for _ in range(20)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(timeout=seconds + 60)


def test_prometheus_scrapes_the_cluster_and_every_dashboard_query_runs(cluster, config, tmp_path):
    plan = cluster
    obs = plan_observability(config, (plan,))
    assert obs.grafana_url is None  # Grafana is not in Debian: the local stack leaves it out
    start(plan)
    assert wait_ready(plan).returncode == 0
    tmp_path.chmod(0o777)
    start_prometheus(obs, tmp_path)
    wait_for(lambda: health_of(f"{obs.prometheus_url}/-/ready"), 30, "Prometheus to start")
    traffic(plan, seconds=8)
    wait_for(
        lambda: prometheus_query(obs.prometheus_url, "vllm:request_success_total")["data"]["result"],
        20,
        "the head's metrics to be scraped",
    )

    up = prometheus_query(obs.prometheus_url, "up")["data"]["result"]
    assert sorted(
        (r["metric"]["job"], r["metric"]["node"], r["metric"]["role"], r["metric"]["ranks"], r["value"][1]) for r in up
    ) == [
        ("supervisor", "sim-0", "head", "0-1", "1"),
        ("supervisor", "sim-1", "headless", "2-3", "1"),
        ("vllm", "sim-0", "head", "0-1", "1"),
    ]
    for _, section in SECTIONS:
        for panel in section:
            for expr, _ in panel.queries:
                answer = prometheus_query(obs.prometheus_url, expr)
                assert answer["status"] == "success", (panel.title, expr, answer)
                if section is SERVING or section is CLUSTER:
                    values = [float(r["value"][1]) for r in answer["data"]["result"]]
                    assert values and all(v == v for v in values), (panel.title, expr, answer)  # not NaN
    with urllib.request.urlopen(f"{obs.prometheus_url}/api/v1/rules", timeout=5) as r:
        rules = [rule for group in json.load(r)["data"]["groups"] for rule in group["rules"]]
    planned = yaml.safe_load(next(u.content for u in obs.prometheus.uploads if u.path.endswith("rules.yml")))
    assert len(rules) == sum(len(group["rules"]) for group in planned["groups"]) == 10
    assert {rule["health"] for rule in rules} == {"ok"}
    # A healthy cluster under this load raises no alert. The burst itself may queue requests for a
    # moment, so QueueGrowing alone may be pending: it fires only after its window.
    assert [rule["name"] for rule in rules if rule["state"] == "firing"] == []
    assert {rule["name"] for rule in rules if rule["state"] == "pending"} <= {"QueueGrowing"}


def health_of(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
