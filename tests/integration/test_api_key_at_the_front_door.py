"""The API key protects the API: the local stack with a key and its front door (Debian's HAProxy:
the same proxy, command line and configuration as Docker Hub's haproxy image gets) in front of the
simulated vllm, on the real Docker engine.

The simulator keeps vllm's hole: its key guards /v1 only, and /invocations serves anyone. Through
the front door no route serves the model without the key.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from localstack import STACK, sh, wait_for, wait_ready
from mocked import PROJECT_DIR

from core.deployment import plan_deployment
from core.render import node_script, sidecar_script
from core.stack import config_from_stack_file, stack_file

KEY = "front-door-canary-3f9a"
COMPLETION = {"model": "deepseek_r1", "prompt": "The future of AI is", "max_tokens": 5}
# vllm 0.18.0's routes outside /v1 that take a request body, and spellings that try to walk
# from /v1 to them.
OTHER_ROUTES = [
    "/invocations",
    "/pooling",
    "/classify",
    "/score",
    "/rerank",
    "/tokenize",
    "/detokenize",
    "/metrics",
    "/v1/../invocations",
    "//invocations",
    "/v1%2F..%2Finvocations",
    "/v1/%2e%2e/invocations",
]


@pytest.fixture
def keyed(clean_stack):
    """The local stack with an API key, started from its rendered scripts, front door included."""
    config = config_from_stack_file(stack_file(PROJECT_DIR, STACK))
    deployment = plan_deployment(config.model_copy(update={"api_key": KEY}), stack=STACK)
    plan, door = deployment.cluster, deployment.front_door
    for script in [*(node_script(plan, n) for n in plan.nodes), sidecar_script(deployment, door)]:
        result = sh(script, env={"VLLM_API_KEY": KEY})
        assert result.returncode == 0, result.stderr
    ready = wait_ready(plan, api_key=KEY)
    assert ready.returncode == 0, ready.stderr
    wait_for(lambda: send(f"{plan.client_local_url}/health")[0] == 200, 30, "the front door to see vllm healthy")
    return deployment


def send(url: str, body: dict | None = None, key: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def test_no_route_serves_the_model_through_the_front_door_without_the_key(keyed):
    plan = keyed.cluster
    direct, door = plan.head_local_url, plan.client_local_url
    assert door != direct and plan.endpoint.startswith(f"http://{plan.head.ip}:8080/")

    # The hole the front door closes: vllm itself serves /invocations to anyone who reaches it.
    status, body = send(f"{direct}/invocations", COMPLETION)
    assert status == 200 and json.loads(body)["choices"][0]["text"]

    for route in OTHER_ROUTES:
        status, body = send(f"{door}{route}", COMPLETION)
        assert status in (400, 404), (route, status, body)
        assert "choices" not in body
    for key in (None, "wrong-key", KEY[:-1], KEY + "0"):
        status, body = send(f"{door}/v1/completions", COMPLETION, key=key)
        assert status == 401 and "choices" not in body, (key, status)
    assert send(f"{door}/v1/models")[0] == 401

    # With the key the API works through the front door, and /health answers anyone.
    status, body = send(f"{door}/v1/completions", COMPLETION, key=KEY)
    assert status == 200 and json.loads(body)["usage"]["completion_tokens"] == 5
    assert send(f"{door}/health")[0] == 200


def test_the_front_door_answers_503_at_once_while_vllm_is_down(keyed):
    plan = keyed.cluster
    sh(f"docker stop -t 30 {plan.head.container_name}", timeout=60)
    wait_for(lambda: send(f"{plan.client_local_url}/health")[0] == 503, 30, "the front door to see vllm down")
    assert send(f"{plan.client_local_url}/v1/completions", COMPLETION, key=KEY)[0] == 503
