"""Run the policy pack on a mocked resource graph, the way the Pulumi engine hands it over.

Resource policies get one `ResourceValidationArgs` per resource and the stack policies one
`StackValidationArgs` with every resource, each with its props wrapped in pulumi-policy's
unknown-checking proxy (as the analyzer does); violations are collected instead of reported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi.runtime import rpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

import policies  # policy/policies.py, imported by name as Pulumi imports it

PROJECT_DIR = Path(__file__).resolve().parent.parent
POLICY_DIR = PROJECT_DIR / "policy"


@dataclass(frozen=True)
class Violation:
    policy: str
    message: str
    urn: str | None


@dataclass
class Node:
    """A resource as the tests build and mutate it (the fields the engine sends)."""

    type: str
    name: str
    urn: str
    inputs: dict
    parent: str = ""
    dependencies: tuple[str, ...] = ()


def graph_of(deployment) -> list[Node]:
    """A mutable copy of a mocked Deployment's resources."""
    return [
        Node(r.type, r.name, r.urn, _with_secrets(r), r.parent or "", tuple(r.dependencies))
        for r in deployment.resources
    ]


def _with_secrets(resource) -> dict:
    """Inputs as the engine sends them to the analyzer: secret values still wrapped."""
    inputs = copy.deepcopy(resource.inputs)
    for key in resource.secret_inputs:
        inputs[key] = {rpc._special_sig_key: rpc._special_secret_sig, "value": inputs[key]}
    return inputs


def engine_props(inputs: dict) -> Any:
    """Props as the analyzer passes them: secrets unwrapped, unknowns behind the checking proxy."""
    return unknown_checking_proxy(deserialize_properties(copy.deepcopy(inputs)))


def _opts(parent: str) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent or None)


def run(
    graph: Iterable[Node],
    only: str | None = None,
    config: dict[str, dict[str, Any]] | None = None,
) -> list[Violation]:
    """Every violation the pack reports on `graph` (or only those of policy `only`)."""
    graph = list(graph)
    config = config or {}
    found: list[Violation] = []
    for policy in policies.POLICIES:
        if only is not None and policy.name != only:
            continue

        def report(message: str, urn: str | None = None, _name: str = policy.name) -> None:
            found.append(Violation(_name, message, urn))

        if isinstance(policy, ResourceValidationPolicy):
            for node in graph:
                args = ResourceValidationArgs(
                    node.type,
                    engine_props(node.inputs),
                    node.urn,
                    node.name,
                    _opts(node.parent),
                    None,
                    config.get(policy.name),
                )
                policy.validate(args, report)
        elif isinstance(policy, StackValidationPolicy):
            resources = {
                node.urn: PolicyResource(
                    node.type,
                    engine_props(node.inputs),
                    node.urn,
                    node.name,
                    _opts(node.parent),
                    None,
                    None,
                    [],
                    {},
                )
                for node in graph
            }
            for node in graph:
                resources[node.urn].parent = resources.get(node.parent)
                resources[node.urn].dependencies = [resources[d] for d in node.dependencies if d in resources]
            policy.validate(StackValidationArgs(list(resources.values()), config.get(policy.name)), report)
    return found


# --- mutating a graph ---------------------------------------------------------------------------


def named(graph: list[Node], name: str) -> Node:
    matches = [n for n in graph if n.name == name]
    assert len(matches) == 1, f"{len(matches)} resources named {name}"
    return matches[0]


def mutate(graph: list[Node], name: str, change: Callable[[dict], Any]) -> list[Node]:
    """A copy of `graph` with `change` applied to the inputs of resource `name`."""
    graph = copy.deepcopy(graph)
    change(named(graph, name).inputs)
    return graph


def set_flag(flag: str, value: str | None = None) -> Callable[[dict], None]:
    """Set (or add) `--flag value`, or the switch `--flag` when value is None."""

    def change(inputs: dict) -> None:
        command = inputs["command"]
        if flag in command:
            i = command.index(flag)
            if value is not None:
                command[i + 1] = value
        else:
            command.extend([flag] if value is None else [flag, value])

    return change


def drop_flag(flag: str) -> Callable[[dict], None]:
    def change(inputs: dict) -> None:
        command = inputs["command"]
        i = command.index(flag)
        takes_value = i + 1 < len(command) and not command[i + 1].startswith("--")
        del command[i : i + (2 if takes_value else 1)]

    return change
