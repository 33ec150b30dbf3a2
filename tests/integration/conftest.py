"""The real Docker engine for the local-stack tests, and a clean slate around each test."""

import os
import subprocess
import sys

import pytest
from localstack import STACK, remove_stack_containers, sh, stack_containers
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
    subprocess.run(
        [sys.executable, "-m", "sim.local_hosts", STACK], cwd=PROJECT_DIR, check=True, capture_output=True, timeout=60
    )


@pytest.fixture
def clean_stack(engine):
    """Starts nothing itself; removes whatever the test started, and checks nothing is left."""
    remove_stack_containers()
    networks = sh("docker network ls -q").stdout.split()
    yield
    remove_stack_containers()
    assert stack_containers() == []
    assert sh("docker network ls -q").stdout.split() == networks
