"""The Docker channel trusts what the checks trust: nodes[i].hostKey, without ever prompting."""

import copy
import json
import os
import shutil
import subprocess

import pytest
from engine_double import EngineDouble
from mocked import SSH_HOME, run_program, stack_settings

from components.host import ssh_home

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


def known_hosts(stack: str) -> str:
    return (SSH_HOME / ".ssh" / f"deepseek-r1-ascend-{stack}.known_hosts").read_text()


def test_pinned_nodes_reach_docker_with_only_their_host_key():
    deployment = run_program(pinned(), stack="pinned")
    assert deployment.error is None
    for node in ("a2-0", "a2-1"):
        assert ssh_opts(deployment, f"{node}-docker") == NON_INTERACTIVE + [
            "-o",
            "UserKnownHostsFile=~/.ssh/deepseek-r1-ascend-pinned.known_hosts",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ]
    assert known_hosts("pinned") == f"192.0.2.11 {KEY_0}\n192.0.2.12 {KEY_1}\n"
    assert (SSH_HOME / ".ssh" / "deepseek-r1-ascend-pinned.known_hosts").stat().st_mode & 0o777 == 0o600


def test_a_non_default_ssh_port_is_part_of_the_pinned_name():
    raw = pinned() | {"ssh": {"port": 2222}}
    deployment = run_program(raw, stack="port")
    assert deployment.named("a2-0-docker").inputs["host"] == "ssh://root@192.0.2.11:2222"
    assert known_hosts("port") == f"[192.0.2.11]:2222 {KEY_0}\n[192.0.2.12]:2222 {KEY_1}\n"


def test_without_a_host_key_docker_still_never_prompts():
    deployment = run_program(stack_settings("a2"), stack="unpinned")
    assert ssh_opts(deployment, "a2-0-docker") == NON_INTERACTIVE
    assert not (SSH_HOME / ".ssh" / "deepseek-r1-ascend-unpinned.known_hosts").exists()


def test_site_ssh_options_follow_and_cannot_loosen_the_pinning():
    deployment = run_program(pinned(sshOpts=["-o", "StrictHostKeyChecking=no"]), stack="loose")
    # ssh keeps the first value it reads for an option.
    assert ssh_opts(deployment, "a2-1-docker")[-2:] == ["-o", "StrictHostKeyChecking=no"]
    assert ssh_opts(deployment, "a2-1-docker").index("StrictHostKeyChecking=yes") < len(NON_INTERACTIVE)


def test_ssh_itself_reads_the_options_as_pinned_and_finds_the_file_where_the_program_writes_it():
    ssh = shutil.which("ssh") or pytest.skip("no OpenSSH client on this machine")
    opts = ssh_opts(run_program(pinned(sshOpts=["-o", "StrictHostKeyChecking=no"]), stack="a2"), "a2-1-docker")
    # ssh's `~` is the password database's home, so a different $HOME must not matter.
    env = {**os.environ, "HOME": "/nonexistent"}
    shown = subprocess.run([ssh, "-G", *opts, "-l", "root", "192.0.2.12"], capture_output=True, text=True, env=env)
    settings = dict(line.split(" ", 1) for line in shown.stdout.splitlines())
    assert settings["batchmode"] == "yes"
    assert settings["stricthostkeychecking"] == "true"
    assert settings["globalknownhostsfile"] == "/dev/null"
    assert settings["userknownhostsfile"] == str(ssh_home() / ".ssh" / "deepseek-r1-ascend-a2.known_hosts")


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
