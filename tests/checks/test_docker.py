"""`docker version`: docker."""

from __future__ import annotations

import pytest

from checks import docker


def test_docker_command():
    assert docker.docker_version_command() == "docker version --format '{{.Server.Version}}' 2>&1 || true"


@pytest.mark.parametrize(
    "out,ok,seen",
    [
        ("27.3.1\n", True, "server 27.3.1"),
        ("24.0.7-ce\n", True, "server 24.0.7-ce"),
        ("", False, "empty output from docker version"),
        ("\n\n", False, "empty output from docker version"),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
            False,
            "docker error: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?",
        ),
        ("sh: 1: docker: not found\n", False, "docker error: sh: 1: docker: not found"),
        ("\n27.3.1\nextra\n", False, "docker error: 27.3.1 extra"),
    ],
)
def test_docker(out, ok, seen):
    r = docker.judge_docker("a2-1", out)
    assert (r.ok, r.seen) == (ok, seen)


def test_docker_message():
    assert docker.judge_docker("a2-1", "permission denied while trying to connect\n").message == (
        "node a2-1: check docker: expected docker daemon reachable, "
        "saw docker error: permission denied while trying to connect"
    )
