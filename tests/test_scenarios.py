"""The real program over several `pulumi up`s against saved state (tests/engine_double.py): what
re-runs, what does not, and how a failure clears once the host is fixed."""

from __future__ import annotations

import copy

import pytest
from engine_double import EngineDouble, step_runner, unknown_paths
from fakehosts import FakeHosts
from hoststubs import fixture
from mocked import healthy_hosts, stack_settings

from components.nodecommand import REPLAY

CHECK_SUFFIXES = ("-check-", "-readiness", "-smoke-test")
# The one step every container waits for, after every check of every node.
GATE = "deepseek-r1-checks-passed"


class Site:
    """Healthy hosts, except what a test breaks; records every script that ran."""

    def __init__(self, config: dict):
        self.hosts: FakeHosts = healthy_hosts(config)
        self.scripts: list[tuple[str, str]] = []
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
    assert GATE not in failed.created
    assert not any(name.endswith("-vllm") for name in failed.created)
    del site.hosts.overrides["a2-1-check-weights-disk"]
    site.scripts.clear()
    retry = engine.up(config)
    assert retry.error is None
    # The check that failed runs again; the ones that passed stay passed. (Which other checks the
    # first run reached before it stopped depends on timing, as with the real engine.)
    passed = {n for n in failed.created if "-check-" in n} - {"a2-1-check-weights-disk"}
    retried = {n for n in site.contacted() if "-check-" in n}
    assert "a2-1-check-weights-disk" in retried and passed and not retried & passed
    assert {GATE, "a2-0-vllm", "a2-1-vllm", "deepseek-r1-readiness", "deepseek-r1-smoke-test"} <= set(retry.created)
    assert engine.up(config).steps == []


def test_a_second_up_with_no_change_contacts_no_node():
    engine, site, config = deployed()
    again = engine.up(config)
    assert (again.steps, site.scripts) == ([], [])


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
    assert not any(name.endswith(("-vllm", "-image")) for _, name in run.steps)


def test_a_new_host_key_reruns_nothing():
    engine, site, config = deployed()
    changed = copy.deepcopy(config)
    changed["nodes"][1]["hostKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinned"
    run = engine.up(changed)
    assert run.error is None and site.contacted() == []
    # The node's Docker provider and its steps take the new key; the steps only replay.
    assert {name for _, name in run.steps} == {"a2-1-docker"} | {n for n, _ in site.scripts}
    assert {op for op, _ in run.steps} == {"update"}


def test_one_serve_flag_replaces_the_group_and_reruns_its_checks_and_verification():
    engine, site, config = deployed()
    run = engine.up(config | {"serve": {"maxNumSeqs": 32}})
    assert run.error is None
    assert {"a2-0-vllm", "a2-1-vllm"} <= set(run.replaced)
    checks = {f"{n}-check-{c}" for n in ("a2-0", "a2-1") for c in ("npu-health", "npu-idle", "npu-ping", "npu-tls")}
    assert checks | {"deepseek-r1-readiness", "deepseek-r1-smoke-test"} <= set(site.contacted())
    # Every check passes, then the gate, before the old containers go: a failing host keeps the
    # running group (below).
    order = [name for _, name in run.steps]
    last_check = max(i for i, name in enumerate(order) if "-check-" in name)
    assert last_check < order.index(GATE) < min(order.index("a2-0-vllm"), order.index("a2-1-vllm"))


def test_a_check_failing_on_a_group_change_keeps_the_running_group():
    engine, site, config = deployed()
    site.hosts.overrides["a2-1-check-npu-health"] = fixture("npu_smi/a2_alarm.txt")
    run = engine.up(config | {"serve": {"maxNumSeqs": 32}})
    assert run.failed == ["a2-1-check-npu-health"]
    # The gate never passes again, so no container is stopped, replaced or started.
    assert GATE not in {name for _, name in run.steps}
    assert not any(name.endswith("-vllm") for _, name in run.steps)


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


@pytest.mark.parametrize("stack", ["a2", "a3"])
def test_the_first_preview_shows_known_container_inputs(stack):
    engine = EngineDouble(stack=stack)
    preview = engine.preview(stack_settings(stack))
    assert preview.error is None and preview.ran == []
    for container in preview.deployment.of_type("docker:index/container:Container"):
        driver = next(i for i, item in enumerate(container.inputs["labels"]) if item["label"].endswith(".driver"))
        # The image id comes from the pull and the driver version from the checks; nothing else waits.
        assert unknown_paths(container.inputs) == ["image", f"labels[{driver}].value"]
