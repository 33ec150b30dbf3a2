"""Run the policy pack on a mocked resource graph, the way the Pulumi engine hands it over.

Resource policies get one `ResourceValidationArgs` per resource and the stack policies one
`StackValidationArgs` with every resource, each with its props wrapped in pulumi-policy's
unknown-checking proxy (as the analyzer does); violations are collected instead of reported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mocked import run_program, stack_settings
from pulumi.runtime import rpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
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
API_KEY = "policy-test-key"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPolicyTestHostKey"


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
    # The URN of the resource's provider (its Docker engine, for a container).
    provider: str = ""


def graph_of(deployment) -> list[Node]:
    """A mutable copy of a mocked Deployment's resources."""
    return [
        Node(r.type, r.name, r.urn, _with_secrets(r), r.parent or "", tuple(r.dependencies), _provider_urn(r.provider))
        for r in deployment.resources
    ]


def _provider_urn(reference: str) -> str:
    """The URN in a provider reference (`URN::ID`)."""
    return reference.rsplit("::", 1)[0] if reference else ""


def _with_secrets(resource) -> dict:
    """Inputs as the engine sends them to the analyzer: secret values still wrapped."""
    inputs = copy.deepcopy(resource.inputs)
    for key in resource.secret_inputs:
        inputs[key] = {rpc._special_sig_key: rpc._special_secret_sig, "value": inputs[key]}
    return inputs


@cache
def _graph(stack: str, api_key: bool, preview: bool = False, nodes: int = 0) -> list[Node]:
    settings = stack_settings(stack)
    if nodes:
        settings["nodes"] = [{"name": f"{stack}-{i}", "ip": f"192.0.2.{21 + i}", "nic": "eth0"} for i in range(nodes)]
        settings["serve"] = {"dataParallelSize": 2 * nodes}
    secret_keys: tuple[str, ...] = ()
    if api_key:
        # What the README asks of a site: an API key, and each node's SSH host key pinned.
        settings["apiKey"] = API_KEY
        secret_keys = ("apiKey",)
        for node in settings["nodes"]:
            node["hostKey"] = HOST_KEY
    return graph_of(run_program(settings, stack=stack, secret_keys=secret_keys, preview=preview))


def graph(stack: str, api_key: bool = True, **kwargs) -> list[Node]:
    """A fresh copy of a stack's mocked graph (with an API key unless told otherwise)."""
    return copy.deepcopy(_graph(stack, api_key, **kwargs))


def messages(found: list[Violation], policy: str) -> list[str]:
    return [v.message for v in found if v.policy == policy]


def engine_props(inputs: dict) -> Any:
    """Props as the analyzer passes them: secrets unwrapped, unknowns behind the checking proxy."""
    return unknown_checking_proxy(deserialize_properties(copy.deepcopy(inputs)))


def provider_of(node: Node, graph: list[Node]) -> PolicyProviderResource | None:
    """The node's provider as the engine passes it along (type, props, URN, name)."""
    provider = next((p for p in graph if node.provider and p.urn == node.provider), None)
    if provider is None:
        return None
    return PolicyProviderResource(provider.type, engine_props(provider.inputs), provider.urn, provider.name)


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
                    provider_of(node, graph),
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
                    provider_of(node, graph),
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


def set_input(key: str, value: Any) -> Callable[[dict], None]:
    def change(inputs: dict) -> None:
        inputs[key] = value

    return change


def drop_input(key: str) -> Callable[[dict], None]:
    return lambda inputs: inputs.pop(key)


def both(*changes: Callable[[dict], Any]) -> Callable[[dict], None]:
    def change(inputs: dict) -> None:
        for c in changes:
            c(inputs)

    return change


def add_volume(host: str, container: str, read_only: bool | None = None) -> Callable[[dict], None]:
    def change(inputs: dict) -> None:
        volume = {"hostPath": host, "containerPath": container}
        if read_only is not None:
            volume["readOnly"] = read_only
        inputs["volumes"].append(volume)

    return change


def _env_list(inputs: dict) -> list[str]:
    envs = inputs["envs"]
    # With an apiKey the program marks envs secret: keep that wrapper.
    return envs["value"] if isinstance(envs, dict) else envs


def set_env(key: str, value: str) -> Callable[[dict], None]:
    def change(inputs: dict) -> None:
        target = _env_list(inputs)
        target[:] = [e for e in target if not e.startswith(key + "=")] + [f"{key}={value}"]

    return change


def drop_env(key: str) -> Callable[[dict], None]:
    def change(inputs: dict) -> None:
        target = _env_list(inputs)
        target[:] = [e for e in target if not e.startswith(key + "=")]

    return change
