"""Running the local stack on the real Docker engine: its rendered per-node scripts, and what a
test reads back (health, logs, the supervisors' metrics). Used by tests/integration."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from checks import servicechecks
from core.plan import STACK_LABEL
from core.render import node_script

STACK = "local"
GROUPED = "local-groups"
READY_TIMEOUT_S = 90


def sh(script: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def stack_containers(stack: str = STACK) -> list[str]:
    out = sh(f"docker ps -aq --filter label={STACK_LABEL}={stack}").stdout
    return out.split()


def remove_stack_containers(stack: str = STACK):
    ids = stack_containers(stack)
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


def wait_ready(plan, timeout: int = READY_TIMEOUT_S, api_key: str | None = None) -> subprocess.CompletedProcess:
    script = servicechecks.readiness_command(
        plan.head_local_url, plan.served_model_name, timeout, 1, plan.head.container_name, plan.stack
    )
    return sh(script, timeout=timeout + 30, env={"VLLM_API_KEY": api_key} if api_key else None)


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


def api_server_pid(container: str) -> int:
    """The host PID of a node's `vllm serve` process (the API server; on a headless node its
    process manager): the child of the container's init (the supervisor) that leads its own
    process group. Its VLLM::EngineCore_DP<rank> processes are its children; orphaned ones (their
    `vllm serve` SIGKILLed) become the init's children too, but lead no group."""
    init = sh(f"docker inspect -f '{{{{.State.Pid}}}}' {container}").stdout.strip()
    found = []
    for child in open(f"/proc/{init}/task/{init}/children").read().split():
        try:
            state, _ppid, group = open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if state != "Z" and group == child:
            found.append(int(child))
    assert len(found) == 1, found
    return found[0]


class Traffic:
    """Clients sending completions to the head from background threads, each request with a short
    timeout (a client that gives up aborts its request), until the block ends."""

    def __init__(self, plan, clients: int = 3, max_tokens: int = 1000, timeout: float = 4.0, url: str | None = None):
        self.url = f"{url or plan.head_local_url}/v1/completions"
        self.body = json.dumps({"model": plan.served_model_name, "prompt": "Tell me", "max_tokens": max_tokens})
        self.clients, self.timeout = clients, timeout
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.completed = self.failed = 0
        # Why requests failed, the first few: what an assertion shows.
        self.errors: list[str] = []

    def _client(self) -> None:
        while not self.stop.is_set():
            request = urllib.request.Request(
                self.url, data=self.body.encode(), headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.completed += 1
            except OSError as error:
                self.failed += 1
                if len(self.errors) < 5:
                    body = error.read().decode(errors="replace")[:200] if hasattr(error, "read") else ""
                    self.errors.append(f"{error} {body}".strip())
                self.stop.wait(0.2)

    def __enter__(self) -> Traffic:
        for i in range(self.clients):
            thread = threading.Thread(target=self._client, name=f"traffic-{i}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(self.timeout + 5)
