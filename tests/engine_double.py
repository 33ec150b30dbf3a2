"""A stateful double of the Pulumi engine and of the pulumi-command and pulumi-docker providers,
for tests that run the program more than once, as users do.

It follows ../shared/reference/pulumi-engine-semantics.md where that agrees with the engine's and
the providers' source; tests/test_engine_double.py holds one test per rule, each citing its source.

- State keeps every resource's inputs and outputs by URN. Each run diffs the program's new inputs
  against the saved ones into nothing, an update or a replace, by the provider's rules.
- Each registration's steps form one chain. Chains run in parallel, ordered only by what the SDK
  waits for before it registers a resource (its dependencies, parent and provider). `run.steps` is
  one order the chains could have run in: ask `run.before` and `most_at_once`, never the list.
- A replace creates the new resource first and deletes the old one after every other step, once
  the run succeeded; unless `delete_before_replace` is set, or the provider asks for delete-first
  (a docker Container's input change). A delete-first replace deletes, in its own chain, first
  the dependents whose inputs come from the replaced resource and would be replaced, then it.
- The first failed step cancels the run: chains under way then finish (every chain that was ready:
  the engine's parallelism is assumed large enough), no new chain starts, nothing is deleted.
- pulumi-command's diff tells a secret from the same value in plain; the docker bridge's diff and
  the replacement trigger do not.
- A container whose start fails after its create is saved, not running, with init errors
  (`engine.failing_starts` injects it). Deleting a container stops it with the grace saved with
  it, on the host its provider's configuration reaches now (`run.stopped`); one left running on
  another host is an orphan (`engine.orphans`).
- A Stash answers its first input as `output` ever after; `up(replace=...)` is `--replace`.
- A preview runs nothing and leaves the outputs of what it would create unknown.

The program itself runs for real, under `pulumi.runtime.set_mocks` (see mocked.py), one fresh
event loop per run.

    engine = EngineDouble(stack="a2")
    engine.up(config)           # first up: creates everything, runs every command
    run = engine.up(config)     # nothing changed: run.steps == []
    run.replaced                # names replaced; run.ran: commands whose scripts ran
    run.before(("delete-replaced", "a2-0-vllm"), ("create-replacement", "a2-1-vllm"))  # ordered?
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fakehosts import FakeHosts
from mocked import COMMANDS, STASH, Deployment, Resource, healthy_hosts, image_id, run_program, stash_outputs
from pulumi.output import Unknown
from pulumi.runtime import rpc

from checks.steps import StepFailed
from components.nodecommand import REPLAY

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
DOCKER_PROVIDER = "pulumi:providers:docker"
STDIO = ("stdout", "stderr")
# Resources whose steps only record something, done long before any command ends.
QUICK = ("pulumi:providers:", "pulumi:index:Stash")
# The chain of the deletes that follow every other step of a successful run.
END = ""
# The engine's key for "the old state has init errors", which `replace_on_changes` can name.
INIT_ERRORS = "#initerror"

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


class StepError(Exception):
    """A step failed: the engine reports it and cancels the run."""


class CommandFailed(StepError):
    """A command exited non-zero: its create (or update, or delete) failed."""

    def __init__(self, name: str, code: int, stdout: str, stderr: str):
        super().__init__(f"{name}: process exited with status {code}\nstdout: {stdout}\nstderr: {stderr}")
        self.name, self.code, self.stdout, self.stderr = name, code, stdout, stderr


class ContainerFailed(StepError):
    """A container was created but did not start (an upload or `docker start` failed)."""


class UnknownTrigger(StepError):
    """`pulumi up` met a replacement trigger that is still unknown."""


class Canceled(Exception):
    """A registration after the run was canceled: the engine answers it with an error."""


@dataclass
class Saved:
    """One resource as state holds it."""

    urn: str
    type: str
    name: str
    id: str
    inputs: dict  # plain values, compared on the next run
    marked: dict  # the inputs with their secrets still marked, as pulumi-command compares them
    outputs: dict  # as returned to the program (secrets still wrapped)
    replacement_trigger: Any
    provider: str  # the provider's URN ("" for providers themselves)
    parent: str
    dependencies: set[str]
    property_dependencies: dict[str, list[str]]
    # Containers: the Docker host they were created on, whether they run, why they did not start.
    host: str = ""
    running: bool = False
    init_errors: list[str] = field(default_factory=list)
    # Deleted ahead of its replacement (delete-first); the next registration creates it.
    pending_replacement: bool = False

    @property
    def waits_for(self) -> set[str]:
        return self.dependencies | {self.provider, self.parent} - {""}


@dataclass(frozen=True)
class Step:
    op: str  # create, update, delete, and for a replace create-replacement and delete-replaced
    name: str
    urn: str
    chain: str  # the URN whose registration ran it; END for the deletes after every other step


@dataclass
class Run:
    deployment: Deployment
    records: list[Step] = field(default_factory=list)
    # Commands whose script ran (empty at preview).
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    failures: list[StepError] = field(default_factory=list)
    # Containers deleted: (name, seconds of grace `docker stop` gave it, Docker host reached).
    stopped: list[tuple[str, int, str]] = field(default_factory=list)
    # Names of the resources in state when the run started.
    existing: set[str] = field(default_factory=set)
    # Per URN registered: what the SDK waited for before registering it.
    waits: dict[str, set[str]] = field(default_factory=dict)
    # Per URN saved when the deletes at the end began: what it depends on.
    old_waits: dict[str, set[str]] = field(default_factory=dict)

    @property
    def steps(self) -> list[tuple[str, str]]:
        """(operation, resource name) in one order the run could have taken."""
        return [(s.op, s.name) for s in self.records]

    @property
    def error(self) -> BaseException | None:
        """The first failed step, else what the program raised."""
        return self.failures[0] if self.failures else self.deployment.error

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

    def _step(self, step: tuple[str, str]) -> Step:
        matches = [s for s in self.records if (s.op, s.name) == step]
        assert len(matches) == 1, f"{len(matches)} steps {step}"
        return matches[0]

    def before(self, first: tuple[str, str], then: tuple[str, str]) -> bool:
        """Whether `first` has finished before `then` starts, whatever the engine's parallelism."""
        a, b = self._step(first), self._step(then)
        if a.chain == b.chain == END:
            # Deletes at the end go dependents first (engine ScheduleDeletes).
            return b.urn in _closure(self.old_waits, a.urn)
        if a.chain == b.chain:
            return self.records.index(a) < self.records.index(b)
        if END in (a.chain, b.chain):
            return b.chain == END
        return a.chain in _closure(self.waits, b.chain)


def _closure(edges: dict[str, set[str]], start: str) -> set[str]:
    """Everything `start` reaches through `edges`, transitively."""
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def most_at_once(run: Run, groups: dict[str, str]) -> dict[str, int]:
    """Per group (a Docker host, a container name), the most of its resources that can exist at
    one moment of `run`, counting as overlapping every two lives that `run.before` leaves
    unordered; `groups` maps resource names to their group."""
    start, finish = ("start", ""), ("finish", "")

    def ordered(x: tuple[str, str], y: tuple[str, str]) -> bool:
        if x == start or y == finish:
            return True
        if x == finish or y == start:
            return False
        return run.before(x, y)

    most: dict[str, int] = {}
    for group in set(groups.values()):
        lives = []
        for name in [n for n, g in groups.items() if g == group]:
            ends = [s for s in run.steps if s[1] == name and s[0].startswith("delete")]
            if name in run.existing:
                lives += [(start, end) for end in ends] or [(start, finish)]
            lives += [(s, finish) for s in run.steps if s[1] == name and s[0].startswith("create")]
        overlap = {
            (i, j)
            for i, j in itertools.combinations(range(len(lives)), 2)
            if not ordered(lives[i][1], lives[j][0]) and not ordered(lives[j][1], lives[i][0])
        }
        most[group] = max(
            (
                len(chosen)
                for size in range(len(lives), 0, -1)
                for chosen in itertools.combinations(range(len(lives)), size)
                if all(pair in overlap for pair in itertools.combinations(chosen, 2))
            ),
            default=0,
        )
    return most


def most_out(run: Run, groups: dict[str, str]) -> int:
    """The most groups that can be out of service at one moment of `run`. A resource is out from
    the delete of its delete-first replacement until its replacement is created; two such spans
    overlap unless `run.before` orders them. `groups` maps resource names to their group."""
    spans = {
        name: (("delete-replaced", name), ("create-replacement", name))
        for name in groups
        if ("delete-replaced", name) in run.steps
        and ("create-replacement", name) in run.steps
        and run.before(("delete-replaced", name), ("create-replacement", name))
    }

    def overlap(x: str, y: str) -> bool:
        return not run.before(spans[x][1], spans[y][0]) and not run.before(spans[y][1], spans[x][0])

    out = sorted({groups[name] for name in spans})
    members = {g: [n for n in spans if groups[n] == g] for g in out}
    return max(
        (
            size
            for size in range(len(out), 0, -1)
            for chosen in itertools.combinations(out, size)
            if all(
                any(overlap(x, y) for x in members[g] for y in members[h]) for g, h in itertools.combinations(chosen, 2)
            )
        ),
        default=0,
    )


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """Where `value` holds an unknown (a preview's `output<T>`), as dotted paths."""
    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
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
        # Old resources of create-first replacements, deleted once a run succeeds.
        self.pending_delete: list[Saved] = []
        # Container resource name -> why its start fails, for every create until removed.
        self.failing_starts: dict[str, str] = {}
        # Containers whose delete went to another Docker host: still running where they were.
        self.orphans: list[Saved] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def up(self, config: dict, **options) -> Run:
        return self._run(config, preview=False, **options)

    def preview(self, config: dict, **options) -> Run:
        return self._run(config, preview=True, **options)

    def saved(self, name: str) -> Saved:
        (found,) = [s for s in self.state.values() if s.name == name]
        return found

    def _run(
        self,
        config: dict,
        *,
        preview: bool,
        secret_keys: tuple[str, ...] = (),
        other_config: dict | None = None,
        replace: tuple[str, ...] = (),
    ) -> Run:
        """`replace`: names of resources to replace whatever changed (`pulumi up --replace`)."""
        run = Run(Deployment(), existing={s.name for s in [*self.state.values(), *self.pending_delete]})
        step = _Responder(self, run, self.runner or step_runner(healthy_hosts(config)), preview, replace)
        run.deployment = run_program(
            config,
            stack=self.stack,
            secret_keys=secret_keys,
            preview=preview,
            other_config=other_config,
            respond=step,
            program=self.program,
        )
        if run.error is None:
            step.delete_the_rest()
        return run


class _Responder:
    """Answers one run's registrations: diff against state, then create, update or replace."""

    def __init__(self, engine: EngineDouble, run: Run, runner: Runner, preview: bool, replace: tuple[str, ...]):
        self.engine, self.run, self.runner, self.preview, self.replace = engine, run, runner, preview, replace
        self.seen: set[str] = set()  # URNs the program declared, aliases included
        self.registered: set[str] = set()
        self.quick: set[str] = set()
        # What had registered when the first step failed: only chains ready then still run.
        self.before_failure: set[str] = set()
        # URNs deleted ahead of their replacement in this run (a preview marks nothing saved).
        self.condemned: set[str] = set()
        # Per URN declared this run: its name and every former name (its own and inherited).
        self.names: dict[str, tuple[str, list[str]]] = {}

    def __call__(self, resource: Resource, inputs: dict) -> tuple[str, dict]:
        with self.engine._lock:
            provider = resource.provider.rsplit("::", 1)[0]
            self.run.waits[resource.urn] = set(resource.dependencies) | {resource.parent, provider} - {""}
            if not resource.custom or resource.type.startswith(QUICK):
                self.quick.add(resource.urn)
            if self.run.failures and not self._in_flight(resource.urn):
                raise Canceled(f"{resource.name}: the update was canceled after {self.run.failures[0]}")
            aliases = self._aliases(resource)
            self.registered.add(resource.urn)
            if not resource.custom:
                return "", {}
            try:
                return self._register(resource, inputs, aliases)
            except StepError as failure:
                if not self.run.failures:
                    self.before_failure = set(self.registered)
                self.run.failures.append(failure)
                raise

    def _in_flight(self, urn: str) -> bool:
        """Whether the engine had started this registration's chain when the first step failed:
        all it waits for had finished by then. Steps that only record something (components,
        providers, stashes) take no time next to a command, a pull or a container; the engine
        runs every chain that is ready at once (its parallelism assumed larger than that)."""
        return all(
            w in self.before_failure or w not in self.run.waits or (w in self.quick and self._in_flight(w))
            for w in self.run.waits[urn]
        )

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
        self.seen.add(resource.urn)
        old = self._previous(resource, aliases)
        plain, marked = dict(resource.inputs), dict(inputs)
        if old is not None:
            for key in resource.ignore_changes:
                if key in old.inputs:
                    plain[key], marked[key] = old.inputs[key], old.marked[key]
        # Deleted ahead of its replacement, now or in a run that then failed: created again.
        deleted_ahead = old is not None and (old.pending_replacement or old.urn in self.condemned)
        if old is None or deleted_ahead:
            kind, delete_first = "create" if old is None else "replace", False
        else:
            kind, delete_first = self._diff(resource, plain, marked, old)
        if kind is None:
            if not self.preview:  # the engine records the new name and options even so
                old.name, old.replacement_trigger = resource.name, resource.replacement_trigger
            return old.id, old.outputs
        if delete_first:
            for dependent in self._dependents(old):
                self._delete(dependent, "delete-replaced", resource.urn)
            self._delete(old, "delete-replaced", resource.urn)
        operation = "create-replacement" if kind == "replace" else kind
        self._record(operation, resource.name, resource.urn, resource.urn)
        if self.preview:
            return _previewed(resource, operation, old, inputs)
        id_ = old.id if operation == "update" else f"{resource.name}-{next(self.engine._ids)}"
        new = _saved(resource, id_, plain, marked, dict(inputs))
        try:
            self._apply(resource, new, operation, old)
        finally:
            # Only a replacement that was created (started or not) condemns the old one
            # (step.go CreateStep.Apply); a delete-first one is gone already.
            if kind == "replace" and not delete_first and not deleted_ahead and self.engine.state.get(new.urn) is new:
                self.engine.pending_delete.append(old)
        return new.id, new.outputs

    def _diff(self, resource: Resource, plain: dict, marked: dict, old: Saved) -> tuple[str | None, bool]:
        """What the engine makes of the change: None, "update" or "replace", and whether the
        replace deletes the old resource first."""
        explicit = _explicit_delete_first(resource)
        if resource.name in self.replace:
            # A targeted replace "blames the id": a diff with no delete-first of the provider's.
            return "replace", bool(explicit)
        new_trigger, old_trigger = _unsecret(resource.replacement_trigger), _unsecret(old.replacement_trigger)
        if unknown_paths(new_trigger) or unknown_paths(old_trigger):
            if not self.preview:
                raise UnknownTrigger(f"{resource.name}: replacement trigger contains unknowns")
            return "replace", bool(explicit)
        if new_trigger is not None and old_trigger is not None and new_trigger != old_trigger:
            # A fired trigger skips the provider's Diff, and with it the provider's delete-first.
            return "replace", bool(explicit)
        # pulumi-command compares inputs with their secrets marked; the docker bridge without.
        new, saved = (marked, old.marked) if resource.type in COMMANDS else (plain, old.inputs)
        changed = {k for k in new.keys() | saved.keys() if _differs(new.get(k), saved.get(k))}
        kind = _provider_diff(resource.type, changed)
        replace_on = set(resource.replace_on_changes)
        if changed & replace_on or (changed and "*" in replace_on):
            kind = "replace"
        if old.init_errors:
            # Replaced only when replace_on_changes names the init errors (or everything);
            # otherwise an update that only goes on waiting for the initialization.
            kind = "replace" if replace_on & {"*", INIT_ERRORS} else kind or "update"
        if kind != "replace":
            return kind, False
        provider_asks = resource.type == CONTAINER and _provider_diff(CONTAINER, changed) == "replace"
        return kind, provider_asks if explicit is None else explicit

    def _dependents(self, root: Saved) -> list[Saved]:
        """What the engine deletes before `root` in a delete-first replace, in that order: every
        saved dependent whose inputs come from what is being replaced and that would be replaced
        then, dependents first; none that registered this run, none deleted already."""
        replacing, reached, found = {root.urn}, {root.urn}, []
        for saved in _dependency_order(self.engine.state.values()):
            links = (
                saved.dependencies | {saved.provider} | {u for us in saved.property_dependencies.values() for u in us}
            )
            if saved.urn in reached or saved.urn in self.registered or not links & reached:
                continue
            reached.add(saved.urn)
            unknown = {
                k for k, urns in saved.property_dependencies.items() if k in saved.inputs and set(urns) & replacing
            }
            if saved.provider in replacing or (unknown and _provider_diff(saved.type, unknown) == "replace"):
                replacing.add(saved.urn)
                if saved.urn not in self.condemned and not saved.pending_replacement:
                    found.append(saved)
        return found[::-1]

    def _apply(self, resource: Resource, new: Saved, operation: str, old: Saved | None) -> None:
        """Run the provider's create or update; save what it leaves (also a container that did
        not start), and raise when it failed."""
        state = self.engine.state
        if resource.type == IMAGE:
            new.outputs["imageId"] = image_id(new.inputs["name"])
        if resource.type == STASH:
            new.outputs = stash_outputs(new.outputs, old.outputs if operation == "update" else None)
        if resource.type in COMMANDS:
            script = new.inputs.get("create")
            environment = _plain(new.inputs.get("environment")) or {}
            if operation == "update":
                script = new.inputs.get("update") or script
                if new.inputs.get("addPreviousOutputInEnv", True):
                    # pulumi-command hands an update the previous output in its environment.
                    environment = {**environment, **_previous_output_env(old)}
            run_inputs = {**new.inputs, "environment": environment}
            # A failing command raises here: a create is not saved, an update keeps the old state.
            new.outputs["stdout"], new.outputs["stderr"] = self._execute(resource.type, new.name, run_inputs, script)
        if resource.type == CONTAINER:
            if operation == "update":
                # The provider's update starts a container only when must_run goes false -> true.
                new.host = old.host
                new.running = old.running or (not old.inputs.get("mustRun", True) and new.inputs.get("mustRun", True))
            else:
                new.host = self._docker_host(new)
                failure = self.engine.failing_starts.get(new.name)
                new.running, new.init_errors = failure is None, [failure] if failure else []
                if failure:
                    state[new.urn] = new
                    self.run.failed.append(new.name)
                    raise ContainerFailed(f"{new.name}: {failure}")
        state[new.urn] = new

    def _execute(self, type_: str, name: str, inputs: dict, script: str) -> tuple[str, str]:
        self.run.ran.append(name)
        code, stdout, stderr = self.runner(type_, name, inputs, script)
        if code != 0:
            self.run.failed.append(name)
            raise CommandFailed(name, code, stdout, stderr)
        # pulumi-command keeps the output without its last newline.
        return stdout.removesuffix("\n"), stderr.removesuffix("\n")

    def _record(self, operation: str, name: str, urn: str, chain: str) -> None:
        self.run.records.append(Step(operation, name, urn, chain))

    def _docker_host(self, saved: Saved) -> str:
        """The host a Docker resource's provider reaches now (its saved configuration)."""
        provider = self.engine.state.get(saved.provider)
        return provider.inputs.get("host", "") if provider is not None else saved.host

    def _delete(self, saved: Saved, operation: str, chain: str) -> None:
        self._record(operation, saved.name, saved.urn, chain)
        if self.preview:
            self.condemned.add(saved.urn)
            return
        if not saved.pending_replacement:
            # Destroying a command runs its `delete` script, if it has one, and nothing otherwise.
            if saved.type in COMMANDS and saved.inputs.get("delete"):
                environment = {**(_plain(saved.inputs.get("environment")) or {}), **_previous_output_env(saved)}
                self._execute(
                    saved.type, saved.name, {**saved.inputs, "environment": environment}, saved.inputs["delete"]
                )
            if saved.type == CONTAINER:
                # The provider stops the container with the grace saved with it, on the host its
                # provider reaches now; "no such container" there counts as deleted.
                host = self._docker_host(saved)
                self.run.stopped.append((saved.name, saved.inputs.get("destroyGraceSeconds") or 0, host))
                if saved.running and host != saved.host:
                    self.engine.orphans.append(saved)
        if chain != END:
            # Deleted ahead of its replacement: state keeps it until the replacement is created.
            self.condemned.add(saved.urn)
            saved.pending_replacement = True
        elif self.engine.state.get(saved.urn) is saved:  # not its replacement
            del self.engine.state[saved.urn]

    def delete_the_rest(self) -> None:
        """After a successful run: what the program no longer declares, and the old resources of
        create-first replacements (also those of earlier failed runs), dependents first."""
        engine = self.engine
        gone = [s for s in engine.state.values() if s.urn not in self.seen]
        condemned = [*engine.pending_delete, *gone]
        self.run.old_waits = {s.urn: s.waits_for for s in [*engine.state.values(), *condemned]}
        deleted: set[int] = set()
        try:
            for saved in reversed(_dependency_order(condemned)):
                if not saved.pending_replacement:
                    self._delete(saved, "delete" if any(saved is g for g in gone) else "delete-replaced", END)
                elif not self.preview:
                    engine.state.pop(saved.urn, None)  # deleted already: only state forgets it
                deleted.add(id(saved))
        except StepError as failure:
            self.run.failures.append(failure)
        if not self.preview:
            engine.pending_delete = [s for s in engine.pending_delete if id(s) not in deleted]


def _dependency_order(saved: Any) -> list[Saved]:
    """`saved` with every resource after what it waits for (stable otherwise)."""
    pending = list(saved)
    urns = {s.urn for s in pending}
    done: set[str] = set()
    ordered = []
    while pending:
        ready = [s for s in pending if not (s.waits_for & urns) - done] or pending[:1]
        for s in ready:
            pending.remove(s)
            done.add(s.urn)
        ordered += ready
    return ordered


def _previewed(resource: Resource, operation: str, old: Saved | None, inputs: dict) -> tuple[str, dict]:
    """What a preview answers: nothing runs, so what the provider would compute (id, imageId, a
    command's new stdout) stays unknown; an update keeps the rest of what it computed before."""
    if operation != "update":
        return "", stash_outputs(inputs, None) if resource.type == STASH else inputs
    if resource.type == STASH:
        return old.id, stash_outputs(inputs, old.outputs)
    kept = {k: v for k, v in old.outputs.items() if resource.type not in COMMANDS or k not in STDIO}
    return old.id, {**kept, **inputs}


def _saved(resource: Resource, id_: str, plain: dict, marked: dict, outputs: dict) -> Saved:
    return Saved(
        resource.urn,
        resource.type,
        resource.name,
        id_,
        plain,
        marked,
        outputs,
        resource.replacement_trigger,
        resource.provider.rsplit("::", 1)[0],
        resource.parent,
        set(resource.dependencies),
        dict(resource.property_dependencies),
    )


def _explicit_delete_first(resource: Resource) -> bool | None:
    """`delete_before_replace` as the engine's goal holds it: None when the program left it unset."""
    defined = resource.delete_before_replace_defined or resource.delete_before_replace
    return resource.delete_before_replace if defined else None


def _provider_diff(type_: str, changed: set[str]) -> str | None:
    """The provider's answer for these changed inputs: None, "update" or "replace"."""
    if not changed:
        return None
    if type_ in COMMANDS:
        return "replace" if "triggers" in changed else "update"
    if type_ in UPDATABLE:
        return "replace" if changed - UPDATABLE[type_] else "update"
    return "update"


def _previous_output_env(old: Saved) -> dict[str, str]:
    """pulumi-command sets each of these only when the saved output is not empty."""
    names = {"stdout": "PULUMI_COMMAND_STDOUT", "stderr": "PULUMI_COMMAND_STDERR"}
    return {names[k]: _plain(old.outputs[k]) for k in STDIO if _plain(old.outputs.get(k))}


def _plain(value: Any) -> Any:
    """Saved outputs keep secrets wrapped; a command's environment sees the value."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return value["value"]
    return value


def _unsecret(value: Any) -> Any:
    """A value with every secret marking removed."""
    value = _plain(value)
    if isinstance(value, dict):
        return {k: _unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecret(v) for v in value]
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
