"""Run the Pulumi program under `pulumi.runtime.set_mocks`, the way the engine would, and record
every resource it declares: inputs (wire names), provider, parent, dependencies and options.

Each resource's outputs come from a `Respond` callable; the default answers as healthy hosts
would on a first `pulumi up`. `engine_double` plugs in saved state across runs."""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import runpy
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
import yaml
from fakehosts import FakeHosts
from google.protobuf import json_format
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from checks.steps import STEPS, StepFailed

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "deepseek-r1-ascend"
# The program writes the stack's known_hosts file below ~ (components/host.py); under test ~ is
# this directory, never the developer's home.
SSH_HOME = Path(tempfile.mkdtemp(prefix=f"{PROJECT}-home-"))
atexit.register(shutil.rmtree, SSH_HOME, ignore_errors=True)


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    inputs: dict
    provider: str
    parent: str
    dependencies: list[str]
    delete_before_replace: bool
    replace_on_changes: list[str]
    replacement_trigger: Any
    secret_inputs: set[str]
    # Former names (`aliases=[pulumi.Alias(name=...)]`) the engine would match saved state by.
    alias_names: list[str]
    custom: bool = True
    ignore_changes: list[str] = field(default_factory=list)
    # URNs this resource was known by before (`aliases`), already resolved.
    aliases: list[str] = field(default_factory=list)
    # `custom_timeouts` as the engine gets them, e.g. {"create": "60m"}; empty when unset.
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    # Whether `delete_before_replace` was set at all: unset, the provider's own choice stands.
    delete_before_replace_defined: bool = False
    # Per input, the resources its value came from (the engine's propertyDependencies).
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Deployment:
    resources: list[Resource] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    secret_outputs: set = field(default_factory=set)
    # What the program raised, if anything (the engine would print it and fail the update).
    error: BaseException | None = None
    # Every step whose create failed: resource name -> message (the engine reports each one).
    failed: dict[str, str] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def servers(self, type_: str = "docker:index/container:Container") -> list[Resource]:
        """The nodes' vllm containers, or their images by type: the children of a VllmServer."""
        return [r for r in self.of_type(type_) if (r.parent or "").split("::")[-2].endswith("index:VllmServer")]

    def named(self, name: str) -> Resource:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"{len(matches)} resources named {name}"
        return matches[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def dependency_edges(self) -> int:
        """Dependencies as the engine gets them: one per resource that a resource waits for."""
        return sum(len(r.dependencies) for r in self.resources)

    def dependency_depth(self) -> int:
        """Resources on the longest chain of dependencies (components are only groupings): how many
        steps the engine, which runs in parallel whatever does not wait, takes one after another."""
        custom = {r.urn: r for r in self.resources if r.custom}

        @cache
        def longest(urn: str) -> int:
            return 1 + max((longest(d) for d in custom[urn].dependencies if d in custom), default=0)

        return max(longest(urn) for urn in custom)


COMMANDS = ("command:remote:Command", "command:local:Command")
STASH = "pulumi:index:Stash"

# Given the recorded resource and its inputs as the engine got them (secrets still wrapped, at
# preview unknowns as `pulumi.output.Unknown`), the resource's id and outputs.
Respond = Callable[[Resource, dict], tuple[str, dict]]


def stash_outputs(inputs: dict, saved: dict | None) -> dict:
    """A Stash (the engine's own resource) answers its first input as `output` ever after; at
    the preview of its create, that is still unknown."""
    if saved is not None:
        return {**inputs, "output": saved["output"]}
    if pulumi.runtime.is_dry_run():
        return {k: v for k, v in inputs.items() if k != "output"}
    return {**inputs, "output": inputs["input"]}


def image_id(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class _Hosts(FakeHosts):
    """FakeHosts, and a step on no node (the NPU addresses, the checks gate) reported as
    `python -m checks` reports it: judged on its spec alone, with nothing for any host to answer."""

    def run(self, name: str, create: str) -> str:
        argv = shlex.split(create)
        spec = json.loads(argv[4])
        if spec["nodes"]:
            return super().run(name, create)
        return json.dumps(STEPS[argv[3]].judge(spec, {}), sort_keys=True)


def healthy_hosts(config: dict, overrides: dict[str, str] | None = None) -> FakeHosts:
    """The nodes of `config` as healthy hosts answer, except the commands named in `overrides`."""
    npus = 16 if config.get("profile") == "atlas-800-a3" else 8
    nodes = config.get("nodes") if isinstance(config.get("nodes"), list) else []
    return _Hosts(nodes, npus, overrides)


def first_up(hosts: FakeHosts, deployment: Deployment) -> Respond:
    """Every resource created now: commands print what their step's judge reports on what `hosts`
    answer (a failing judgement fails the create), images get an id. A preview runs nothing."""

    def respond(resource: Resource, inputs: dict) -> tuple[str, dict]:
        outputs = dict(inputs)
        if resource.type == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = image_id(inputs["name"])
        if resource.type == STASH:
            outputs = stash_outputs(inputs, None)
        if resource.type in COMMANDS and not pulumi.runtime.is_dry_run():
            try:
                outputs["stdout"] = hosts.run(resource.name, resource.inputs["create"])
            except StepFailed as failure:
                deployment.failed[resource.name] = str(failure)
                raise
            outputs["stderr"] = ""
        return f"{resource.name}-id", outputs

    return respond


class _Mocks(pulumi.runtime.Mocks):
    """Only for what the recording monitor does not answer itself (invokes, reads)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def _secret_paths(value: Any, path: str = "") -> set[str]:
    """Top-level input names that carry a secret anywhere inside them."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return {path}
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found |= _secret_paths(inner, path or key)
    elif isinstance(value, list):
        for inner in value:
            found |= _secret_paths(inner, path)
    return found


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks, deployment: Deployment, respond: Respond):
        super().__init__(mocks)
        self.deployment = deployment
        self.respond = respond

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        # Registrations arrive on executor threads, which need a loop to deserialize references.
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        resource = Resource(
            urn=urn,
            type=request.type,
            name=request.name,
            inputs=rpc.deserialize_properties_unwrap_secrets(request.object)[0],
            provider=request.provider,
            parent=request.parent,
            dependencies=list(request.dependencies),
            delete_before_replace=request.deleteBeforeReplace,
            replace_on_changes=list(request.replaceOnChanges),
            replacement_trigger=json_format.MessageToDict(request.replacement_trigger)
            if request.HasField("replacement_trigger")
            else None,
            secret_inputs=_secret_paths(json_format.MessageToDict(request.object)),
            alias_names=[a.spec.name for a in request.aliases if a.HasField("spec")],
            custom=request.custom,
            ignore_changes=list(request.ignoreChanges),
            aliases=[self._alias_urn(alias, request) for alias in request.aliases],
            custom_timeouts={
                op: getattr(request.customTimeouts, op)
                for op in ("create", "update", "delete")
                if getattr(request.customTimeouts, op)
            },
            delete_before_replace_defined=request.deleteBeforeReplaceDefined,
            property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
        )
        self.deployment.resources.append(resource)
        id_, state = self.respond(resource, inputs)
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_, state)
        return resource_pb2.RegisterResourceResponse(
            urn=urn, id=id_, object=_sync_await(rpc.serialize_properties(state, {}))
        )

    def _alias_urn(self, alias, request) -> str:
        if alias.urn:
            return alias.urn
        spec = alias.spec
        parent = "" if spec.noParent else spec.parentUrn or request.parent
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name)


def stack_settings(stack: str) -> dict:
    """A shipped stack file's settings, without the project prefix."""
    document = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in document["config"].items()}


def run_program(
    config: dict,
    *,
    stack: str = "test",
    secret_keys: tuple[str, ...] = (),
    preview: bool = False,
    other_config: dict | None = None,
    host_outputs: dict[str, str] | None = None,
    respond: Respond | None = None,
    program: Callable[[], None] | None = None,
) -> Deployment:
    """Run __main__.py (or `program`) with `config` (keys without the project prefix) in a fresh
    event loop.

    Commands on the nodes answer as healthy hosts would, except those named in `host_outputs`;
    `respond` replaces that answer for every resource.
    """
    deployment = Deployment()
    respond = respond or first_up(healthy_hosts(config, host_outputs), deployment)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    home = mock.patch("components.host.ssh_home", return_value=SSH_HOME)
    home.start()
    try:
        settings.reset_options()
        mocks = _Mocks()
        monitor = _RecordingMonitor(mocks, deployment, respond)
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
        values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
        values.update(other_config or {})
        pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secret_keys])

        async def main():
            if program is None:
                runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")
            else:
                program()

        try:
            loop.run_until_complete(run_pulumi_func(main))
        except Exception as error:  # noqa: BLE001 - handed to the test to assert on
            deployment.error = error
            return deployment
        root = settings.get_root_resource()
        for name, value in root.outputs.items():
            output = pulumi.Output.from_input(value)
            deployment.outputs[name] = loop.run_until_complete(output.future())
            if loop.run_until_complete(output.is_secret()):
                deployment.secret_outputs.add(name)
    finally:
        home.stop()
        settings.reset_options()
        loop.close()
        asyncio.set_event_loop(None)
    return deployment
