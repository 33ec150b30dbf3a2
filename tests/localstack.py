"""Running the local stack on the real Docker engine: its rendered per-node scripts, and what a
test reads back (health, logs, the supervisors' metrics). Used by tests/integration."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from checks import servicechecks
from core.plan import STACK_LABEL
from core.render import node_script

STACK = "local"
READY_TIMEOUT_S = 90


def sh(script: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def stack_containers() -> list[str]:
    out = sh(f"docker ps -aq --filter label={STACK_LABEL}={STACK}").stdout
    return out.split()


def remove_stack_containers():
    ids = stack_containers()
    if ids:
        sh("docker rm -f " + " ".join(ids))


def start(plan, edit=lambda node, script: script):
    """Run each node's rendered script (optionally edited as a person might mistype it)."""
    for node in plan.nodes:
        result = sh(edit(node, node_script(plan, node)))
        assert result.returncode == 0, result.stderr


def logs(plan, index: int) -> str:
    result = sh(f"docker logs {plan.nodes[index].container_name}")
    return result.stdout + result.stderr


def wait_ready(plan, timeout: int = READY_TIMEOUT_S) -> subprocess.CompletedProcess:
    script = servicechecks.readiness_command(
        plan.head_local_url, plan.served_model_name, timeout, 1, plan.head.container_name, plan.stack
    )
    return sh(script, timeout=timeout + 30)


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    """Status and body; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return 0, ""


def health(plan) -> int:
    return get(f"{plan.head_local_url}/health")[0]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
