"""The real program over several `pulumi up`s against saved state (tests/engine_double.py): one
test per multi-run statement of docs/operations.md ("What changes on `pulumi up`") and
docs/checks.md. Orders are asserted on the engine's happens-before relation (`run.before`,
`most_at_once`), never on the order steps were recorded in."""

from __future__ import annotations

import copy
from unittest import mock

import pulumi
import pytest
from engine_double import ContainerFailed, EngineDouble, most_at_once, step_runner, unknown_paths
from fakehosts import FakeHosts
from hoststubs import fixture
from mocked import healthy_hosts, stack_settings

from components.nodecommand import REPLAY

# The one step every container waits for, after every check of every node.
GATE = "deepseek-r1-checks-passed"
CONTAINERS = ("a2-0-vllm", "a2-1-vllm")
HOSTS = {"a2-0-vllm": "192.0.2.11", "a2-1-vllm": "192.0.2.12"}


class Site:
    """Healthy hosts, except what a test breaks; records every script that ran."""

    def __init__(self, config: dict):
        self.scripts: list[tuple[str, str]] = []
        self.serve(config)

    def serve(self, config: dict) -> None:
        """Healthy hosts as `config` places them (a node moved answers at its new address)."""
        self.hosts: FakeHosts = healthy_hosts(config)
        self._run = step_runner(self.hosts)

    def __call__(self, type_: str, name: str, inputs: dict, script: str) -> tuple[int, str, str]:
        self.scripts.append((name, script))
        return self._run(type_, name, inputs, script)

    def contacted(self) -> list[str]:
        """Steps that reached a node (anything but replaying a saved report)."""
        return [name for name, script in self.scripts if script != REPLAY]


def deployed(stack: str = "a2", **changes) -> tuple[EngineDouble, Site, dict]:
    config = copy.deepcopy(stack_settings(stack)) | changes
    site = Site(config)
    engine = EngineDouble(stack=stack, runner=site)
    first = engine.up(config)
    assert first.error is None, first.error
    site.scripts.clear()
    return engine, site, config


def changed(config: dict, **sections) -> dict:
    raw = copy.deepcopy(config)
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return raw


def names(run) -> set[str]:
    return {name for _, name in run.steps}


def running(engine: EngineDouble) -> dict[str, bool]:
    return {c: engine.saved(c).running for c in CONTAINERS}


def test_a_second_up_with_no_change_contacts_no_node():
    engine, site, config = deployed()
    again = engine.up(config)
    assert (again.steps, site.scripts) == ([], [])


# --- a failed check -----------------------------------------------------------------------------


def test_a_failed_check_clears_once_the_host_is_fixed():
    config = stack_settings("a2")
    site = Site(config)
    site.hosts.overrides["a2-1-check-weights-disk"] = fixture("disk/missing.txt")
    engine = EngineDouble(stack="a2", runner=site)
    failed = engine.up(config)
    assert failed.failed == ["a2-1-check-weights-disk"]
    assert failed.error.stderr.startswith(
        "node a2-1: check weights-disk: expected at least 50 GiB free in /root/.cache"
    )
    # The gate never passes, so no container starts.
    assert GATE not in names(failed) and not names(failed) & set(CONTAINERS)
    del site.hosts.overrides["a2-1-check-weights-disk"]
    site.scripts.clear()
    retry = engine.up(config)
    assert retry.error is None
    # The check that failed runs again; the ones that passed stay passed.
    passed = {n for n in failed.created if "-check-" in n} - set(failed.failed)
    retried = {n for n in site.contacted() if "-check-" in n}
    assert "a2-1-check-weights-disk" in retried and passed and not retried & passed
    assert {GATE, *CONTAINERS, "deepseek-r1-readiness", "deepseek-r1-smoke-test"} <= set(retry.created)
    assert engine.up(config).steps == []


def test_one_up_reports_every_failing_check_at_once():
    # Every check is ready at once, so each is under way when the first one fails.
    config = stack_settings("a2")
    site = Site(config)
    site.hosts.overrides["a2-0-check-weights-disk"] = fixture("disk/missing.txt")
    site.hosts.overrides["a2-1-check-npu-health"] = fixture("npu_smi/a2_alarm.txt")
    failed = EngineDouble(stack="a2", runner=site).up(config)
    assert sorted(failed.failed) == ["a2-0-check-weights-disk", "a2-1-check-npu-health"]


# --- connection changes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnew\n"},
        {"ssh": {"user": "deploy", "port": 2222}},
    ],
    ids=["new-ssh-key", "new-ssh-user-and-port"],
)
def test_new_ssh_settings_rerun_nothing(change):
    engine, site, config = deployed()
    run = engine.up(config | change, secret_keys=tuple(k for k in change if k == "sshPrivateKey"))
    assert run.error is None
    assert site.contacted() == []
    assert {op for op, _ in run.steps} <= {"update"} and run.steps
    assert not any(name.endswith(("-vllm", "-image", "-machine")) for name in names(run))


@pytest.mark.parametrize(
    "change", [{"hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinned"}, {"sshOpts": ["-J", "jump"]}]
)
def test_a_new_host_key_or_ssh_option_reruns_nothing(change):
    engine, site, config = deployed()
    raw = copy.deepcopy(config)
    raw["nodes"][1].update(change)
    run = engine.up(raw)
    assert run.error is None and site.contacted() == []
    # The node's Docker provider and its steps take the new options; the steps only replay.
    assert names(run) == {"a2-1-docker"} | {n for n, _ in site.scripts}
    assert {op for op, _ in run.steps} == {"update"}


# --- a change that replaces the group -----------------------------------------------------------


def test_one_serve_flag_replaces_the_group_and_reruns_its_checks_and_verification():
    engine, site, config = deployed()
    run = engine.up(changed(config, serve={"maxNumSeqs": 32}))
    assert run.error is None
    checks = {f"{n}-check-{c}" for n in ("a2-0", "a2-1") for c in ("npu-health", "npu-idle", "npu-ping", "npu-tls")}
    assert checks | {"deepseek-r1-readiness", "deepseek-r1-smoke-test"} <= set(site.contacted())
    gate = ("create-replacement", GATE)
    for container in CONTAINERS:
        # Every check passes, then the gate, before the old containers go: a failing host keeps
        # the running group (below). Each node's container goes before its successor comes.
        down, up = ("delete-replaced", container), ("create-replacement", container)
        assert all(run.before(("create-replacement", check), gate) for check in checks)
        assert run.before(gate, down) and run.before(down, up)
        # Readiness runs again once both new containers are there.
        assert run.before(up, ("create-replacement", "deepseek-r1-readiness"))
    # Its old resource goes with the first old container (its trigger holds their ids).
    assert any(run.before(("delete-replaced", "deepseek-r1-readiness"), ("delete-replaced", c)) for c in CONTAINERS)
    assert most_at_once(run, HOSTS) == {"192.0.2.11": 1, "192.0.2.12": 1}
    # The old checks go once everything else is done.
    assert run.before(("create-replacement", "deepseek-r1-smoke-test"), ("delete-replaced", "a2-1-check-npu-tls"))
    assert running(engine) == {"a2-0-vllm": True, "a2-1-vllm": True}


def test_a_check_failing_on_a_group_change_keeps_the_running_group():
    engine, site, config = deployed()
    site.hosts.overrides["a2-1-check-npu-health"] = fixture("npu_smi/a2_alarm.txt")
    group_change = changed(config, serve={"maxNumSeqs": 32})
    run = engine.up(group_change)
    assert run.failed == ["a2-1-check-npu-health"]
    # The gate never passes again, so no container is stopped, replaced or started.
    assert GATE not in names(run) and not names(run) & set(CONTAINERS)
    assert running(engine) == {"a2-0-vllm": True, "a2-1-vllm": True} and run.stopped == []
    del site.hosts.overrides["a2-1-check-npu-health"]
    assert set(CONTAINERS) <= set(engine.up(group_change).replaced)


def test_a_new_group_epoch_replaces_the_whole_group():
    engine, site, config = deployed()
    run = engine.up(changed(config, supervision={"groupEpoch": 1}))
    assert run.error is None and set(CONTAINERS) <= set(run.replaced)
    assert all(run.before(("create-replacement", GATE), ("delete-replaced", c)) for c in CONTAINERS)


def test_a_benchmark_setting_reruns_only_the_benchmark():
    engine, site, config = deployed(benchmark={"enabled": True})
    run = engine.up(config | {"benchmark": {"enabled": True, "numPrompts": 50}})
    assert run.error is None
    assert site.contacted() == ["deepseek-r1-benchmark"]
    assert run.replaced == ["deepseek-r1-benchmark"]


def test_an_accuracy_setting_reruns_only_the_accuracy_run():
    base = {"accuracy": {"enabled": True, "tokenizer": "/root/.cache/r1"}, "serve": {"maxModelLen": 35000}}
    engine, site, config = deployed(**base)
    run = engine.up(config | {"accuracy": {**base["accuracy"], "limit": 10}})
    assert run.error is None and site.contacted() == ["deepseek-r1-accuracy"]


# --- the stop grace -----------------------------------------------------------------------------


def test_a_new_grace_takes_effect_in_its_own_up_and_the_next_replacement_uses_it():
    engine, site, config = deployed()
    patient = changed(config, container={"stopGraceSeconds": 300})
    grace = engine.up(patient)
    assert sorted(grace.steps) == [("update", c) for c in CONTAINERS] and site.scripts == []
    replaced = engine.up(changed(patient, serve={"maxNumSeqs": 32}))
    assert sorted(replaced.stopped) == [(c, 300, f"ssh://root@{HOSTS[c]}") for c in CONTAINERS]


def test_a_grace_changed_with_a_replacement_stops_the_old_containers_with_the_old_grace():
    """Why docs/operations.md asks for the grace in an `up` of its own: Docker reads it from the
    state of the container it deletes."""
    engine, site, config = deployed()
    run = engine.up(changed(config, container={"stopGraceSeconds": 300}, serve={"maxNumSeqs": 32}))
    assert sorted(run.stopped) == [(c, 60, f"ssh://root@{HOSTS[c]}") for c in CONTAINERS]


# --- renames, secrets marked later --------------------------------------------------------------


@pytest.mark.parametrize("key", ["serve", "nodes"])
def test_a_key_marked_secret_later_reruns_nothing(key):
    engine, site, config = deployed(serve={"maxNumSeqs": 32})
    run = engine.up(config, secret_keys=(key,))
    assert run.error is None
    # Only how the steps hold their command and connection changes: an update, which replays.
    assert site.contacted() == [] and {op for op, _ in run.steps} == {"update"}
    assert not names(run) & {*CONTAINERS, "a2-0-image", "a2-1-image", "a2-0-docker", "a2-1-docker"}
    assert engine.up(config, secret_keys=(key,)).steps == []


# Renames: tests/test_renames.py.


def test_upgrading_from_steps_that_held_their_command_in_plain_runs_every_step_once():
    plain = staticmethod(pulumi.Output.from_input)
    with mock.patch.object(pulumi.Output, "secret", plain):
        engine, site, config = deployed()
    run = engine.up(config)
    assert run.error is None and not names(run) & set(CONTAINERS)
    assert {op for op, _ in run.steps} == {"create-replacement", "delete-replaced"}
    assert engine.up(config).steps == []


# --- a container that did not start -------------------------------------------------------------


def test_a_container_that_did_not_start_is_replaced_by_the_next_up():
    config = stack_settings("a2")
    site = Site(config)
    engine = EngineDouble(stack="a2", runner=site)
    engine.failing_starts["a2-1-vllm"] = "Error response from daemon: error gathering device information"
    failed = engine.up(config)
    assert isinstance(failed.error, ContainerFailed) and failed.failed == ["a2-1-vllm"]
    assert "deepseek-r1-readiness" not in names(failed) and not engine.saved("a2-1-vllm").running
    del engine.failing_starts["a2-1-vllm"]
    retry = engine.up(config)
    assert retry.error is None
    assert retry.before(("delete-replaced", "a2-1-vllm"), ("create-replacement", "a2-1-vllm"))
    assert running(engine) == {"a2-0-vllm": True, "a2-1-vllm": True}
    assert "deepseek-r1-readiness" in retry.created
    assert engine.up(config).steps == []


def test_an_observability_container_that_did_not_start_is_replaced_by_the_next_up():
    config = stack_settings("local")
    engine = EngineDouble(stack="local", runner=Site(config))
    engine.failing_starts["sim-0-prometheus"] = "Error response from daemon: port is already allocated"
    failed = engine.up(config)
    assert isinstance(failed.error, ContainerFailed) and failed.failed == ["sim-0-prometheus"]
    del engine.failing_starts["sim-0-prometheus"]
    retry = engine.up(config)
    assert retry.error is None
    assert retry.before(("delete-replaced", "sim-0-prometheus"), ("create-replacement", "sim-0-prometheus"))
    assert engine.saved("sim-0-prometheus").running


# --- a node's address ---------------------------------------------------------------------------


def moved(config: dict, **node_1) -> dict:
    raw = copy.deepcopy(config)
    raw["nodes"][1].update(node_1)
    return raw


def test_a_node_moved_to_another_address_is_refused_before_any_container_is_touched():
    engine, site, config = deployed()
    elsewhere = moved(config, ip="192.0.2.99")
    site.serve(elsewhere)
    for run in (engine.preview(elsewhere), engine.up(elsewhere)):
        assert isinstance(run.error, pulumi.RunError)
        assert str(run.error).startswith(
            "nodes[1].ip: node a2-1 was deployed on 192.0.2.12; Pulumi would now remove its containers "
            "through 192.0.2.99 and leave them running on 192.0.2.12, holding its NPUs."
        )
        assert str(run.error).endswith("::a2-1-machine'")
        assert not names(run) & {*CONTAINERS, "a2-0-image", "a2-1-image", "a2-0-docker", "a2-1-docker"}
    assert running(engine) == {"a2-0-vllm": True, "a2-1-vllm": True} and engine.orphans == []
    # The way forward it names: remove the container there, then accept the move.
    engine.saved("a2-1-vllm").running = False
    accepted = engine.up(elsewhere, replace=("a2-1-machine",))
    assert accepted.error is None and engine.orphans == []
    assert {"a2-1-image", *CONTAINERS} <= set(accepted.replaced)
    assert engine.saved("a2-1-vllm").host == "ssh://root@192.0.2.99"
    assert engine.up(elsewhere).steps == []


def test_a_node_accepted_on_another_machine_stages_its_weights_there():
    engine, site, config = deployed(weights={"stage": True})
    elsewhere = moved(config, ip="192.0.2.99")
    site.serve(elsewhere)
    site.scripts.clear()
    assert engine.up(elsewhere, replace=("a2-1-machine",)).error is None
    assert "a2-1-stage-weights" in site.contacted() and "a2-0-stage-weights" not in site.contacted()


def test_a_moved_address_that_was_set_as_a_secret_is_not_printed():
    engine, site, config = deployed()
    site.serve(moved(config, ip="192.0.2.99"))
    run = engine.up(moved(config, ip="192.0.2.99"), secret_keys=("nodes",))
    assert str(run.error).startswith("nodes[1].ip: node a2-1 was deployed on its old address;")
    assert "192.0.2." not in str(run.error) and "vllm-ascend" not in str(run.error)


def test_an_address_change_on_the_same_docker_engine_replaces_the_group_there():
    engine, site, config = deployed("local")
    site.serve(moved(config, ip="127.0.0.3"))
    run = engine.up(moved(config, ip="127.0.0.3"))
    assert run.error is None and {"sim-0-vllm", "sim-1-vllm"} <= set(run.replaced)
    assert engine.orphans == []


# --- preview ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["a2", "a3"])
def test_the_first_preview_shows_known_container_inputs(stack):
    engine = EngineDouble(stack=stack)
    preview = engine.preview(stack_settings(stack))
    assert preview.error is None and preview.ran == []
    for container in preview.deployment.servers():
        found = [
            f"labels[{i}].value"
            for i, item in enumerate(container.inputs["labels"])
            if item["label"].endswith((".driver", ".cann", ".soc"))
        ]
        # The image id comes from the pull, the driver version and the image's CANN and SoC from
        # the checks; nothing else waits.
        assert unknown_paths(container.inputs) == ["image", *found] and len(found) == 3
