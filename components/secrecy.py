"""Values derived from config keys the user set as secrets stay Pulumi secrets."""

from __future__ import annotations

from typing import TypeVar

import pulumi

from core.plan import NodePlan

T = TypeVar("T")

# What a step's command line and connection are derived from (every key but env and container).
STEP_SOURCES = ("nodes", "ssh", "model", "serve", "verify", "benchmark", "accuracy", "preflight", "image", "weights")


def hidden(node: NodePlan, value: pulumi.Input[T], *keys: str) -> pulumi.Input[T]:
    """`value` as a secret when any of `keys` was set with `--secret`, else unchanged."""
    return pulumi.Output.secret(value) if node.hides(*keys) else value
