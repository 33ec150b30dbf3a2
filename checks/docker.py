"""`docker version`: the node's Docker engine answers (`docker`)."""

from __future__ import annotations

import re
import shlex

from .common import CheckResult, as_text

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "docker"


def docker_version_command() -> str:
    return "docker version --format " + shlex.quote("{{.Server.Version}}") + " 2>&1 || true"


_DOCKER_VERSION = re.compile(r"^\d+\.\d+(?:\.\d+)?[0-9A-Za-z.+~-]*$")


def judge_docker(node: str, output: str) -> CheckResult:
    text = as_text(output).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    expected = "docker daemon reachable"
    if len(lines) == 1 and _DOCKER_VERSION.match(lines[0]):
        return CheckResult(node, CHECK, True, expected, f"server {lines[0]}", {"version": lines[0]})
    if not lines:
        return CheckResult(node, CHECK, False, expected, "empty output from docker version")
    flat = " ".join(" ".join(lines).split())
    return CheckResult(node, CHECK, False, expected, f"docker error: {flat[:160]}", {"output": text})
