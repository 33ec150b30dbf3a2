"""Two groups behind vllm-router and the front door, for real: the local-groups stack (one
simulated A2 node per group) on this machine's Docker engine, with the membership steps run as
`pulumi up` runs them (`python -m checks <step>`), in the order the engine double proves
(tests/test_groups.py): drain a group, replace it, rejoin it once it serves, then the next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest
from localstack import GROUPED, Traffic, api_server_pid, get, sh, wait_for, wait_ready
from mocked import PROJECT_DIR

from checks import membership, servicechecks
from components.nodecommand import step_command
from core.config import Benchmark
from core.deployment import plan_deployment
from core.render import node_script, sidecar_script
from core.router import worker_url
from core.stack import config_from_stack_file, stack_file


@pytest.fixture(scope="module")
def deployment():
    return plan_deployment(config_from_stack_file(stack_file(PROJECT_DIR, GROUPED)), stack=GROUPED)


def run(script: str) -> None:
    result = sh(script, timeout=120)
    assert result.returncode == 0, result.stderr


def start_group(plan) -> None:
    for node in plan.nodes:
        run(node_script(plan, node))


@pytest.fixture(scope="module")
def serving(clean_groups, deployment):
    """Both groups, the router and the front door, started and serving through the front door; each
    test leaves them so."""
    for plan in deployment.groups:
        start_group(plan)
    for sidecar in deployment.sidecars:
        run(sidecar_script(deployment, sidecar))
    for plan in deployment.groups:
        ready = wait_ready(plan)
        assert ready.returncode == 0, ready.stderr
    wait_for(lambda: healthy_workers(deployment) == 2, 60, "the router to see both groups healthy")
    wait_for(lambda: get(f"{front_door(deployment)}/v1/models")[0] == 200, 30, "the front door to see the router")
    return deployment


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def healthy_workers(deployment) -> int:
    try:
        workers = get_json(f"{deployment.router.url}/workers")["workers"]
    except OSError:
        return 0
    return sum(1 for w in workers if w["is_healthy"])


def step(deployment, plan, name: str) -> dict:
    """A membership step as its resource runs it: `python -m checks`, judged inside."""
    node = deployment.router.container.node
    spec = {
        "node": node,
        "nodes": [node],
        "group": plan.group,
        "router": deployment.router.url,
        "worker": worker_url(plan),
    }
    if name == membership.JOIN:
        spec |= {"servedName": plan.served_model_name, "timeoutSeconds": 120, "intervalSeconds": 1}
    else:
        spec |= {"drainSeconds": deployment.router.drain_seconds}
    env = {**os.environ, "DEPLOY_PYTHON": sys.executable, "NODE_SSH": json.dumps({node: None})}
    done = subprocess.run(
        ["/bin/sh", "-c", step_command(name, spec)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def succeeded(plan) -> float:
    """Requests the group's head has finished, from its vllm metrics (0 while it cannot answer)."""
    try:
        with urllib.request.urlopen(f"{plan.head_local_url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:request_success_total")
    )


def front_door(deployment) -> str:
    return deployment.endpoint.removesuffix("/v1")


def test_traffic_through_the_router_survives_replacing_both_groups_one_after_the_other(serving):
    deployment = serving
    with Traffic(deployment.cluster, clients=3, max_tokens=40, timeout=10, url=front_door(deployment)) as traffic:
        wait_for(lambda: traffic.completed >= 10, 60, "traffic through the front door")
        for plan in deployment.groups:
            drained = step(deployment, plan, membership.DRAIN)
            assert drained["requestsLeft"] == 0
            for node in plan.nodes:
                run(f"docker rm -f {node.container_name}")
            start_group(plan)
            # The other group serves: the step returns only once this one serves again.
            joined = step(deployment, plan, membership.JOIN)
            assert joined["joined"].startswith("after ")
            assert healthy_workers(deployment) == 2
        before = traffic.completed
        wait_for(lambda: traffic.completed >= before + 10, 60, "traffic after the rollout")
    assert traffic.failed == 0, traffic.errors
    assert traffic.completed > 20


def test_a_dead_groups_requests_go_to_the_other_and_it_returns_once_healed(serving):
    deployment = serving
    blue = deployment.groups[0]
    with Traffic(deployment.cluster, clients=3, max_tokens=40, timeout=10, url=front_door(deployment)) as traffic:
        wait_for(lambda: traffic.completed >= 10, 60, "traffic through the front door")
        os.kill(api_server_pid(blue.head.container_name), 9)
        # The router stops routing to it within its health checks, and takes it back once its
        # supervisor has restarted it.
        wait_for(lambda: healthy_workers(deployment) == 1, 30, "the router to take the dead group out")
        wait_for(lambda: healthy_workers(deployment) == 2, 120, "the healed group back in the router")
        # Back means served again: the circuit breaker the failures opened closes too.
        served = succeeded(blue)
        wait_for(lambda: succeeded(blue) >= served + 5, 120, "the healed group serving requests again")
    assert traffic.failed == 0, traffic.errors


def bench(deployment, base_url: str) -> dict:
    settings = Benchmark(numPrompts=40, requestRate=100, resultDir="/tmp/bench")
    head = deployment.cluster.head
    result = sh(
        servicechecks.benchmark_command(
            head.container_name, deployment.cluster.model, "deepseek_r1", base_url, settings, GROUPED
        ),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return servicechecks.parse_benchmark(result.stdout)


def test_two_groups_serve_at_least_1_8_times_what_one_group_does(serving):
    deployment = serving
    one = bench(deployment, deployment.groups[0].head_local_url)
    two = bench(deployment, front_door(deployment))
    assert one["completed"] == two["completed"] == 40
    ratio = two["output_throughput"] / one["output_throughput"]
    print(
        f"output throughput: one group {one['output_throughput']:.0f} tok/s, two groups {two['output_throughput']:.0f} tok/s, {ratio:.2f}x"
    )
    assert ratio >= 1.8


def test_the_front_door_keeps_the_routers_admin_routes_from_clients(serving):
    deployment = serving
    door = front_door(deployment)
    for method, route in (
        ("POST", "/add_worker?url=http://203.0.113.9:8000"),
        ("POST", "/remove_worker?url=http://127.0.0.1:8000"),
        ("GET", "/workers"),
        ("POST", "/flush_cache"),
        ("GET", "/metrics"),
    ):
        request = urllib.request.Request(f"{door}{route}", method=method, data=b"" if method == "POST" else None)
        try:
            urllib.request.urlopen(request, timeout=5)
            status = 200
        except urllib.error.HTTPError as error:
            status = error.code
        assert status == 404, (route, status)
    # The worker set is untouched: both groups, nothing added.
    urls = sorted(w["url"] for w in get_json(f"{deployment.router.url}/workers")["workers"])
    assert urls == sorted(worker_url(g) for g in deployment.groups)
