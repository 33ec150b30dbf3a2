"""A stateful double of the Pulumi engine and of the pulumi-command and pulumi-docker providers,
for tests that run the program more than once, as users do.

It follows ../shared/reference/pulumi-engine-semantics.md: state keeps every resource's inputs
and outputs by URN; each run diffs the program's new inputs against the saved ones into nothing,
an update or a replace by the provider's rules; a failed create is not saved; a preview runs
nothing and leaves the outputs of what it would create unknown. The program itself runs for
real, under `pulumi.runtime.set_mocks` (see mocked.py), one fresh event loop per run.

    engine = EngineDouble(stack="a2")
    engine.up(config)           # first up: creates everything, runs every command
    run = engine.up(config)     # nothing changed: run.steps == []
    run.replaced                # names replaced, in order; run.ran: commands whose scripts ran

Assumption beyond the reference: a changed provider configuration (e.g. `sshOpts`) is an
update of the provider only; its resources are not touched.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fakehosts import FakeHosts
from mocked import COMMANDS, Deployment, Resource, healthy_hosts, image_id, run_program
from pulumi.output import Unknown
from pulumi.runtime import rpc

from checks.steps import StepFailed
from components.nodecommand import REPLAY

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
STDIO = ("stdout", "stderr")

# The few docker inputs the provider changes in place; a change to any other one replaces
# (terraform-provider-docker: every other container/image attribute is ForceNew).
UPDATABLE = {
    CONTAINER: {
        "attach",
        "containerReadRefreshTimeoutMilliseconds",
        "cpuSet",
        "cpuShares",
        "destroyGraceSeconds",
        "logs",
        "maxRetryCount",
        "memory",
        "memorySwap",
        "mustRun",
        "removeVolumes",
        "restart",
        "rm",
        "start",
        "wait",
        "waitTimeout",
    },
    IMAGE: {"keepLocally", "forceRemove"},
}

# (resource type, name, inputs, script) -> (exit code, stdout, stderr). `script` is the text
# that runs: the `create` script on create, and on an update without an `update` script; the
# `update` or `delete` script otherwise.
Runner = Callable[[str, str, dict, str], tuple[int, str, str]]


class CommandFailed(Exception):
    """A command exited non-zero: its create (or update, or delete) failed."""

    def __init__(self, name: str, code: int, stdout: str, stderr: str):
        super().__init__(f"{name}: process exited with status {code}\nstdout: {stdout}\nstderr: {stderr}")
        self.name, self.code, self.stdout, self.stderr = name, code, stdout, stderr


@dataclass
class Saved:
    """One resource as state holds it."""

    urn: str
    type: str
    name: str
    id: str
    inputs: dict  # plain values, compared on the next run
    outputs: dict  # as returned to the program (secrets still wrapped)
    replacement_trigger: Any


@dataclass
class Run:
    deployment: Deployment
    # (operation, resource name) in the order they happened; operations as Pulumi names them:
    # create, update, delete, and for a replace create-replacement and delete-replaced.
    steps: list[tuple[str, str]] = field(default_factory=list)
    # Commands whose script ran, in order (empty at preview).
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def error(self) -> BaseException | None:
        return self.deployment.error

    def _named(self, operation: str) -> list[str]:
        return [name for op, name in self.steps if op == operation]

    @property
    def created(self) -> list[str]:
        return self._named("create")

    @property
    def updated(self) -> list[str]:
        return self._named("update")

    @property
    def replaced(self) -> list[str]:
        return self._named("create-replacement")

    @property
    def deleted(self) -> list[str]:
        return self._named("delete")


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """Where `value` holds an unknown (a preview's `output<T>`), as dotted paths."""
    if isinstance(value, Unknown):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in unknown_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in unknown_paths(v, f"{path}[{i}]")]
    return []


class EngineDouble:
    def __init__(self, stack: str = "test", runner: Runner | None = None, program: Callable[[], None] | None = None):
        """`runner` answers every command (default: healthy hosts); `program` replaces __main__.py."""
        self.stack = stack
        self.runner = runner
        self.program = program
        self.state: dict[str, Saved] = {}
        # Old resources of create-before-delete replacements, deleted once a run succeeds.
        self.pending_delete: list[Saved] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def up(self, config: dict, **options) -> Run:
        return self._run(config, preview=False, **options)

    def preview(self, config: dict, **options) -> Run:
        return self._run(config, preview=True, **options)

    def _run(
        self, config: dict, *, preview: bool, secret_keys: tuple[str, ...] = (), other_config: dict | None = None
    ) -> Run:
        run = Run(Deployment())
        hosts = healthy_hosts(config)

        step = _Step(self, run, self.runner or step_runner(hosts), preview)
        run.deployment = run_program(
            config,
            stack=self.stack,
            secret_keys=secret_keys,
            preview=preview,
            other_config=other_config,
            respond=step,
            program=self.program,
        )
        if run.error is not None or run.failed:
            # A failed update deletes nothing; replaced resources wait for the next success.
            if not preview:
                self.pending_delete += step.replaced
            return run
        # What the program no longer declares goes last, dependents before what they depend on.
        gone = [s for s in reversed(self.state.values()) if s.urn not in step.seen]
        try:
            for saved in self.pending_delete + step.replaced:
                step.delete(saved, "delete-replaced")
            for saved in gone:
                step.delete(saved, "delete")
        except CommandFailed as error:
            run.deployment.error = error
        if not preview:
            self.pending_delete = []
        return run


class _Step:
    """Answers one run's registrations: diff against state, then create, update or replace."""

    def __init__(self, engine: EngineDouble, run: Run, runner: Runner, preview: bool):
        self.engine, self.run, self.runner, self.preview = engine, run, runner, preview
        self.seen: set[str] = set()  # URNs the program declared, aliases included
        # Per URN declared this run: its name and every former name (its own and inherited).
        self.names: dict[str, tuple[str, list[str]]] = {}
        self.replaced: list[Saved] = []  # old resources of create-before-delete replacements

    def __call__(self, resource: Resource, inputs: dict) -> tuple[str, dict]:
        with self.engine._lock:
            aliases = self._aliases(resource)
            if not resource.custom:
                return "", {}
            return self._register(resource, inputs, aliases)

    def _aliases(self, resource: Resource) -> list[str]:
        """The URNs the resource had before: its own `aliases`, and those it inherits from a
        renamed parent when its name starts with the parent's (the parent's prefix swapped for
        the parent's former name), as the engine derives them."""
        former = [urn.rsplit("::", 1)[1] for urn in resource.aliases]
        urns = list(resource.aliases)
        parent_name, parent_former = self.names.get(resource.parent, ("", []))
        if parent_name and resource.name.startswith(parent_name):
            inherited = [old + resource.name[len(parent_name) :] for old in parent_former]
            former += inherited
            urns += [resource.urn.rsplit("::", 1)[0] + "::" + name for name in inherited]
        self.names[resource.urn] = (resource.name, former)
        return urns

    def _previous(self, resource: Resource, aliases: list[str]) -> Saved | None:
        """The resource's saved state, under its URN or, once renamed, under an alias."""
        state = self.engine.state
        if resource.urn in state:
            return state[resource.urn]
        alias = next((urn for urn in aliases if urn in state), None)
        if alias is None:
            return None
        self.seen.add(alias)
        if self.preview:
            return state[alias]
        state[resource.urn] = dataclasses.replace(state.pop(alias), urn=resource.urn)
        return state[resource.urn]

    def _register(self, resource: Resource, inputs: dict, aliases: list[str]) -> tuple[str, dict]:
        state = self.engine.state
        self.seen.add(resource.urn)
        old = self._previous(resource, aliases)
        new_inputs = dict(resource.inputs)
        if old is not None:
            new_inputs.update({k: old.inputs[k] for k in resource.ignore_changes if k in old.inputs})
        operation = "create" if old is None else self._diff(resource, new_inputs, old)
        if operation is None:
            if not self.preview:  # the engine records the new name and options even so
                old.name, old.replacement_trigger = resource.name, resource.replacement_trigger
            return old.id, old.outputs
        if operation == "replace" and (resource.delete_before_replace or resource.type in COMMANDS):
            self.delete(old, "delete-replaced")
            operation = "create-replacement"
        elif operation == "replace":
            self.replaced.append(old)
            operation = "create-replacement"
        self.run.steps.append((operation, resource.name))
        if self.preview:
            # Nothing runs: what the provider would compute (id, imageId, a command's new stdout)
            # stays unknown; an update keeps the rest of what it computed before.
            if operation != "update":
                return "", inputs
            kept = {k: v for k, v in old.outputs.items() if resource.type not in COMMANDS or k not in STDIO}
            return old.id, {**kept, **inputs}
        id_ = old.id if operation == "update" else f"{resource.name}-{next(self.engine._ids)}"
        # A failing command raises here: a create is not saved, an update keeps the old state.
        outputs = self._apply(resource, new_inputs, inputs, operation, old if operation == "update" else None)
        state[resource.urn] = Saved(
            resource.urn, resource.type, resource.name, id_, new_inputs, outputs, resource.replacement_trigger
        )
        return id_, outputs

    def _diff(self, resource: Resource, new: dict, old: Saved) -> str | None:
        changed = {k for k in new.keys() | old.inputs.keys() if _differs(new.get(k), old.inputs.get(k))}
        trigger = resource.replacement_trigger
        # An unset old or new trigger never fires.
        fired = (
            trigger is not None and old.replacement_trigger is not None and _differs(trigger, old.replacement_trigger)
        )
        if not changed and not fired:
            return None
        if fired or changed & set(resource.replace_on_changes) or "*" in resource.replace_on_changes:
            return "replace"
        if resource.type in COMMANDS:
            return "replace" if "triggers" in changed else "update"
        if resource.type in UPDATABLE:
            return "replace" if changed - UPDATABLE[resource.type] else "update"
        return "update"

    def _apply(self, resource: Resource, plain: dict, inputs: dict, operation: str, old: Saved | None) -> dict:
        outputs = dict(inputs)
        if resource.type == IMAGE:
            outputs["imageId"] = image_id(plain["name"])
        if resource.type in COMMANDS:
            script = plain.get("update") if operation == "update" and plain.get("update") else plain.get("create")
            if old is not None and plain.get("addPreviousOutputInEnv", True):
                # pulumi-command hands a re-run the previous output in its environment.
                previous = {k: _plain(old.outputs.get(k, "")) for k in STDIO}
                environment = _plain(plain.get("environment")) or {}
                plain = {**plain, "environment": {**environment, **_previous_output_env(previous)}}
            outputs["stdout"], outputs["stderr"] = self._execute(resource.type, resource.name, plain, script)
        return outputs

    def _execute(self, type_: str, name: str, inputs: dict, script: str) -> tuple[str, str]:
        self.run.ran.append(name)
        code, stdout, stderr = self.runner(type_, name, inputs, script)
        if code != 0:
            self.run.failed.append(name)
            raise CommandFailed(name, code, stdout, stderr)
        return stdout, stderr

    def delete(self, saved: Saved, operation: str) -> None:
        self.run.steps.append((operation, saved.name))
        if self.preview:
            return
        # Destroying a command runs its `delete` script, if it has one, and nothing otherwise.
        if saved.type in COMMANDS and saved.inputs.get("delete"):
            self._execute(saved.type, saved.name, saved.inputs, saved.inputs["delete"])
        if self.engine.state.get(saved.urn) is saved:  # not its replacement
            del self.engine.state[saved.urn]


def _previous_output_env(previous: dict[str, str]) -> dict[str, str]:
    return {"PULUMI_COMMAND_STDOUT": previous["stdout"], "PULUMI_COMMAND_STDERR": previous["stderr"]}


def _plain(value: Any) -> Any:
    """Saved outputs keep secrets wrapped; a command's environment sees the value."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return value["value"]
    return value


def step_runner(hosts: FakeHosts) -> Runner:
    """Commands as the program's steps run them: `python -m checks`, judged on what `hosts` print
    (exit 1 with the message when the judge fails); an update replays its previous stdout."""

    def run(type_: str, name: str, inputs: dict, script: str) -> tuple[int, str, str]:
        if script == REPLAY:
            return 0, inputs["environment"]["PULUMI_COMMAND_STDOUT"], ""
        try:
            return 0, hosts.run(name, script), ""
        except StepFailed as failure:
            return 1, "", f"{failure}\n"

    return run


def _differs(new: Any, old: Any) -> bool:
    return bool(unknown_paths(new)) or new != old
