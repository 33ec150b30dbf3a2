"""Run the Pulumi program under `pulumi.runtime.set_mocks`, the way the engine would, and record
every resource it declares: inputs (wire names), provider, parent, dependencies and options."""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from fakehosts import FakeHosts
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "deepseek-r1-ascend"


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


@dataclass
class Deployment:
    resources: list[Resource] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    secret_outputs: set = field(default_factory=set)
    # What the program raised, if anything (the engine would print it and fail the update).
    error: BaseException | None = None

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Resource:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"{len(matches)} resources named {name}"
        return matches[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)


COMMANDS = ("command:remote:Command", "command:local:Command")


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, hosts: FakeHosts):
        self.hosts = hosts

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = "sha256:" + hashlib.sha256(args.inputs["name"].encode()).hexdigest()
        if args.typ in COMMANDS:
            outputs["stdout"] = self.hosts.stdout(args.name, args.inputs.get("create", ""))
            outputs["stderr"] = ""
        return f"{args.name}-id", outputs

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
    def __init__(self, mocks, deployment: Deployment):
        super().__init__(mocks)
        self.deployment = deployment

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            from google.protobuf import json_format

            raw = json_format.MessageToDict(request.object)
            self.deployment.resources.append(
                Resource(
                    urn=response.urn,
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
                    secret_inputs=_secret_paths(raw),
                    alias_names=[a.spec.name for a in request.aliases if a.HasField("spec")],
                )
            )
        return response


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
) -> Deployment:
    """Run __main__.py with `config` (keys without the project prefix) in a fresh event loop.

    Commands on the nodes answer as healthy hosts would, except those named in `host_outputs`.
    """
    deployment = Deployment()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        settings.reset_options()
        npus = 16 if config.get("profile") == "atlas-800-a3" else 8
        nodes = config.get("nodes") if isinstance(config.get("nodes"), list) else []
        mocks = _Mocks(FakeHosts(nodes, npus, host_outputs))
        pulumi.runtime.set_mocks(
            mocks, project=PROJECT, stack=stack, preview=preview, monitor=_RecordingMonitor(mocks, deployment)
        )
        values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
        values.update(other_config or {})
        pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secret_keys])

        async def program():
            runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")

        try:
            loop.run_until_complete(run_pulumi_func(program))
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
        settings.reset_options()
        loop.close()
        asyncio.set_event_loop(None)
    return deployment
