"""Mooncake imports in the node's pulled image (`mooncake`).

PD nodes hand the KV cache over with vllm-ascend's Mooncake connector, and Mooncake is no pip
package: it is built into the image, or missing from it. vllm starts without it and fails only
when the connector loads, after the weights; so a throwaway container of the exact pulled image
(its id, not the tag), with no network and no device, imports Mooncake's transfer engine first.
"""

from __future__ import annotations

import re

from .common import CheckResult, as_text, quote

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "mooncake"

MARKER = "mooncake ok"
IMPORT = f"from mooncake.engine import TransferEngine; print({MARKER!r})"
FIX = "use a vllm-ascend image that ships Mooncake (the v0.18.0 images do)"
DOCKER_FIX = "check that the image is pulled on the node and that its Docker engine answers"
# What says what went wrong: a Python exception's last line (Mooncake missing or broken in the
# image), else docker's own error (the image could not run at all); docker ends with a usage hint.
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception)\b")
_DOCKER = re.compile(r"^(?:docker: |Error response from daemon)")


def mooncake_command(image_id: str) -> str:
    run = f"docker run --rm --network none --entrypoint python3 {quote(image_id)} -c {quote(IMPORT)}"
    return f"{run} 2>&1 || true"


def judge_mooncake(node: str, output: str, image: str) -> CheckResult:
    expected = f"Mooncake's TransferEngine importable in {image}"
    lines = [line.strip() for line in as_text(output).splitlines() if line.strip()]
    if MARKER in lines:
        return CheckResult(node, CHECK, True, expected, MARKER)
    exceptions = [line for line in lines if _EXCEPTION.match(line)]
    if exceptions:
        return CheckResult(node, CHECK, False, expected, exceptions[-1][:200], {"fix": FIX})
    docker = [line for line in lines if _DOCKER.match(line)] or lines or ["no output"]
    return CheckResult(node, CHECK, False, expected, docker[-1][:200], {"fix": DOCKER_FIX})
