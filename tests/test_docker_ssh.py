"""The Docker channel trusts what the checks trust: nodes[i].hostKey, without ever prompting."""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from engine_double import EngineDouble
from mocked import PROJECT_DIR, SSH_HOME, run_program, stack_settings

from components import host
from components.host import ssh_home, write_known_hosts
from core.config import load_config
from core.connection import known_hosts_file
from core.plan import plan_cluster

KEY_0 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfNodeZero"
KEY_1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfNodeOne"
NON_INTERACTIVE = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=30"]


def pinned(**node_changes) -> dict:
    raw = copy.deepcopy(stack_settings("a2"))
    for node, key in zip(raw["nodes"], (KEY_0, KEY_1), strict=True):
        node.update(hostKey=key, **node_changes)
    return raw


def ssh_opts(deployment, provider: str) -> list[str] | None:
    # Provider inputs reach the engine as JSON text.
    raw = deployment.named(provider).inputs.get("sshOpts")
    return json.loads(raw) if raw else None


def pins(stack: str) -> Path:
    return SSH_HOME / known_hosts_file(stack).removeprefix("~/")


def known_hosts(stack: str) -> str:
    return pins(stack).read_text()


def test_pinned_nodes_reach_docker_with_only_their_host_key():
    deployment = run_program(pinned(), stack="pinned")
    assert deployment.error is None
    for node in ("a2-0", "a2-1"):
        assert ssh_opts(deployment, f"{node}-docker") == NON_INTERACTIVE + [
            "-o",
            f"UserKnownHostsFile={known_hosts_file('pinned')}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ]
    assert known_hosts("pinned") == f"192.0.2.11 {KEY_0}\n192.0.2.12 {KEY_1}\n"
    assert pins("pinned").stat().st_mode & 0o777 == 0o600


def test_a_non_default_ssh_port_is_part_of_the_pinned_name():
    raw = pinned() | {"ssh": {"port": 2222}}
    deployment = run_program(raw, stack="port")
    assert deployment.named("a2-0-docker").inputs["host"] == "ssh://root@192.0.2.11:2222"
    assert known_hosts("port") == f"[192.0.2.11]:2222 {KEY_0}\n[192.0.2.12]:2222 {KEY_1}\n"


def test_without_a_host_key_docker_still_never_prompts():
    deployment = run_program(stack_settings("a2"), stack="unpinned")
    assert ssh_opts(deployment, "a2-0-docker") == NON_INTERACTIVE
    assert not pins("unpinned").exists()


def test_site_ssh_options_follow_the_pinning():
    deployment = run_program(pinned(sshOpts=["-o", "ProxyJump=bastion.example"]), stack="loose")
    # ssh keeps the first value it reads for an option: the pinning comes first (and the options
    # that would add trust beside it are refused by validation, tests/test_config.py).
    assert ssh_opts(deployment, "a2-1-docker")[-2:] == ["-o", "ProxyJump=bastion.example"]
    assert ssh_opts(deployment, "a2-1-docker").index("StrictHostKeyChecking=yes") < len(NON_INTERACTIVE)


def test_ssh_itself_reads_the_options_as_pinned_and_finds_the_file_where_the_program_writes_it():
    ssh = shutil.which("ssh") or pytest.skip("no OpenSSH client on this machine")
    opts = ssh_opts(run_program(pinned(sshOpts=["-o", "ConnectTimeout=10"]), stack="a2"), "a2-1-docker")
    # ssh's `~` is the password database's home, so a different $HOME must not matter.
    env = {**os.environ, "HOME": "/nonexistent"}
    shown = subprocess.run([ssh, "-G", *opts, "-l", "root", "192.0.2.12"], capture_output=True, text=True, env=env)
    settings = dict(line.split(" ", 1) for line in shown.stdout.splitlines())
    assert settings["batchmode"] == "yes"
    assert settings["stricthostkeychecking"] == "true"
    assert settings["globalknownhostsfile"] == "/dev/null"
    assert settings["userknownhostsfile"] == str(ssh_home() / known_hosts_file("a2").removeprefix("~/"))
    assert settings["connecttimeout"] == "10"


def test_a_local_engine_needs_no_ssh():
    deployment = run_program(stack_settings("local"), stack="local")
    assert ssh_opts(deployment, "sim-0-docker") is None


@pytest.mark.parametrize("change", [{"sshOpts": ["-J", "bastion"]}, {"hostKey": KEY_0.replace("Zero", "Rotated")}])
def test_new_docker_ssh_settings_touch_no_container(change):
    engine = EngineDouble(stack="a2")
    engine.up(pinned())
    changed = pinned()
    changed["nodes"][1].update(change)
    run = engine.up(changed)
    assert run.error is None
    assert not {name for _, name in run.steps} & {"a2-0-vllm", "a2-1-vllm", "a2-0-image", "a2-1-image"}


def test_the_pinned_keys_file_is_named_per_checkout_and_stack():
    # Two checkouts on one machine, each with its own `prod` (two sites), keep their own pins.
    name = known_hosts_file("prod")
    assert name == known_hosts_file("prod", PROJECT_DIR)
    assert name.startswith("~/.ssh/deepseek-r1-ascend-prod-") and name.endswith(".known_hosts")
    assert known_hosts_file("prod", Path("/srv/other-site/deepseek-r1-ascend")) != name
    assert known_hosts_file("staging") != name


def test_the_pinned_keys_file_is_replaced_atomically_never_written_through(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "ssh_home", lambda: tmp_path)
    plan = plan_cluster(load_config(pinned()), "atomic")
    path = tmp_path / plan.known_hosts_file.removeprefix("~/")
    path.parent.mkdir(mode=0o700)
    # A link planted at the name is replaced, not followed into the file it points at.
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    path.symlink_to(victim)
    old = os.umask(0o022)
    try:
        write_known_hosts(plan)
    finally:
        os.umask(old)
    assert victim.read_text() == "untouched\n"
    assert not path.is_symlink() and path.read_text() == f"192.0.2.11 {KEY_0}\n192.0.2.12 {KEY_1}\n"
    assert path.stat().st_mode & 0o777 == 0o600
    # Nothing half-written is left beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_failed_write_keeps_the_previous_pins(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "ssh_home", lambda: tmp_path)
    plan = plan_cluster(load_config(pinned()), "atomic")
    write_known_hosts(plan)
    path = tmp_path / plan.known_hosts_file.removeprefix("~/")
    before = path.read_text()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    changed = plan_cluster(load_config(pinned() | {"ssh": {"port": 2222}}), "atomic")
    with pytest.raises(OSError):
        write_known_hosts(changed)
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
