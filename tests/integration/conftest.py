"""The real Docker engine for the local-stack tests, and a clean slate around each test."""

import os
import subprocess
import sys

import pytest
from localstack import GROUPED, STACK, remove_stack_containers, sh, stack_containers
from mocked import PROJECT_DIR


@pytest.fixture(scope="session")
def engine():
    problem = None
    if os.geteuid() != 0:
        problem = "needs root to run Docker and create fake NPU device nodes"
    else:
        result = subprocess.run(
            ["bash", str(PROJECT_DIR / "scripts" / "docker-engine.sh")], capture_output=True, text=True, timeout=1800
        )
        if result.returncode != 0:
            problem = "Docker cannot run here: " + result.stderr.strip().splitlines()[-1]
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the local-stack integration test must run in CI, but {problem}")
        pytest.skip(problem)
    for stack in (STACK, GROUPED):
        subprocess.run(
            [sys.executable, "-m", "sim.local_hosts", stack],
            cwd=PROJECT_DIR,
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def clean_stack(engine):
    """Starts nothing itself; removes whatever the test started, and checks nothing is left."""
    yield from _clean(STACK)


@pytest.fixture(scope="module")
def clean_groups(engine):
    """clean_stack for the local-groups stack, around a whole module: its tests share one start."""
    yield from _clean(GROUPED)


def _clean(stack: str):
    remove_stack_containers(stack)
    networks = sh("docker network ls -q").stdout.split()
    yield
    remove_stack_containers(stack)
    assert stack_containers(stack) == []
    assert sh("docker network ls -q").stdout.split() == networks
