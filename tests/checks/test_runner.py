"""`python -m checks`: a step run for real as the program's resources run it, judged inside."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hoststubs import run_sh, stub

from checks.__main__ import WORKDIR_PREFIX, ssh_argv, workdir_base
from components.nodecommand import PROJECT_DIR, REPLAY, step_command

# Stands in for OpenSSH: records its argv, then runs the remote command here as sshd would.
SSH_STUB = r"""
printf '%s\n' "$@" > "$SSH_LOG"
while [ "$1" != "--" ]; do shift; done
shift 2
exec sh -c "$1"
"""


def run_step(tmp_path: Path, step: str, spec: dict, connection: dict | None, env: dict | None = None, stdin: str = ""):
    environment = {
        **os.environ,
        "DEPLOY_PYTHON": sys.executable,
        "NODE_SSH": json.dumps({spec["node"]: connection}),
        "SSH_LOG": str(tmp_path / "ssh.log"),
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        **(env or {}),
    }
    create = step_command(step, {**spec, "nodes": [spec["node"]]})
    return subprocess.run(
        ["/bin/sh", "-c", create],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=PROJECT_DIR,
        timeout=60,
    )


def test_a_passing_step_prints_its_report(tmp_path):
    stub(tmp_path / "docker", "echo 28.2.2")
    done = run_step(tmp_path, "docker", {"node": "a2-0"}, None)
    assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, {"seen": "server 28.2.2"}, "")


def test_a_failing_step_exits_non_zero_with_the_message_only(tmp_path):
    stub(tmp_path / "docker", "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock' >&2; exit 1")
    done = run_step(tmp_path, "docker", {"node": "a2-0"}, None)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "node a2-0: check docker: expected docker daemon reachable, saw docker error: Cannot connect to the Docker "
        "daemon at unix:///var/run/docker.sock; fix the node and run `pulumi up` again (a failed check is not "
        "saved, so it runs again)\n"
    )


def test_a_node_is_reached_with_this_machines_ssh_and_its_secrets_on_stdin(tmp_path):
    stub(tmp_path / "ssh", SSH_STUB)
    stub(tmp_path / "docker", 'echo "28.2.2 $VLLM_API_KEY"')
    connection = {"host": "192.0.2.12", "user": "root", "port": 2222, "hostKey": "ssh-ed25519 AAAAK", "opts": []}
    spec = {"node": "a2-1", "secrets": ["VLLM_API_KEY"]}
    done = run_step(tmp_path, "docker", spec, connection, env={"SSH_PRIVATE_KEY": "KEY"}, stdin="sk-1\n")
    # The secret reached the node's script (and the judge saw it; a real docker prints no key).
    assert "docker error: 28.2.2 sk-1" in done.stderr
    argv = (tmp_path / "ssh.log").read_text().splitlines()
    assert argv[argv.index("-p") + 1 : argv.index("-p") + 4] == ["2222", "-l", "root"]
    assert "BatchMode=yes" in argv and "StrictHostKeyChecking=yes" in argv and "IdentitiesOnly=yes" in argv
    assert "sk-1" not in " ".join(argv)


def test_a_long_wait_reports_its_progress_while_it_runs(tmp_path):
    stub(
        tmp_path / "docker", "echo 'waiting for http://127.0.0.1:8000 to serve deepseek_r1: 60s of 3600s'; echo 28.2.2"
    )
    done = run_step(tmp_path, "docker", {"node": "a2-0"}, None)
    assert done.stderr.startswith("waiting for http://127.0.0.1:8000 to serve deepseek_r1: 60s of 3600s\n")


def test_an_unreachable_node_names_the_ssh_settings(tmp_path):
    stub(tmp_path / "ssh", "echo 'ssh: connect to host 192.0.2.12 port 22: Connection refused' >&2; exit 255")
    connection = {"host": "192.0.2.12", "user": "root", "port": 22, "hostKey": None, "opts": []}
    done = run_step(tmp_path, "docker", {"node": "a2-1"}, connection)
    assert done.returncode == 1
    assert done.stderr.startswith(
        "node a2-1: cannot run the step over SSH (ssh: connect to host 192.0.2.12 port 22: Connection refused)"
    )


def test_ssh_takes_the_docker_channels_options_first_and_logs_in_with_the_stacks_key(tmp_path):
    pinned = ["-o", "UserKnownHostsFile=~/.ssh/deepseek-r1-ascend-a2.known_hosts", "-o", "StrictHostKeyChecking=yes"]
    connection = {"host": "192.0.2.12", "user": "root", "port": 2222, "hostKey": "ssh-ed25519 AAAAK", "opts": pinned}
    argv = ssh_argv(connection, tmp_path, "-----BEGIN KEY-----\nabc")
    # Strict and non-interactive before anything else, then the Docker channel's options.
    assert argv[2:10] == ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", *pinned]
    assert not (tmp_path / "known_hosts").exists()
    assert (tmp_path / "id").read_text() == "-----BEGIN KEY-----\nabc\n"
    assert (tmp_path / "id").stat().st_mode & 0o777 == 0o600
    assert argv[-4:] == ["-p", "2222", "-l", "root"]


def test_a_node_without_the_stacks_known_hosts_file_is_pinned_all_the_same(tmp_path):
    connection = {"host": "192.0.2.12", "user": "root", "port": 2222, "hostKey": "ssh-ed25519 AAAAK", "opts": []}
    argv = ssh_argv(connection, tmp_path, None)
    assert (tmp_path / "known_hosts").read_text() == "[192.0.2.12]:2222 ssh-ed25519 AAAAK\n"
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in argv and "-i" not in argv
    unpinned = ssh_argv({**connection, "port": 22, "hostKey": None}, tmp_path / "x", None)
    assert not any(a.startswith("UserKnownHostsFile") for a in unpinned)


@pytest.mark.parametrize(
    "opts",
    [[], ["-o", "StrictHostKeyChecking=no"], ["-o", "StrictHostKeyChecking=accept-new", "-J", "bastion"]],
    ids=["no options", "site options loosening it", "trust on first use"],
)
def test_a_node_without_a_host_key_is_still_checked_strictly_against_the_users_known_hosts(tmp_path, opts):
    # A node whose Docker host is not ssh:// gets no provider options: only the site's.
    connection = {"host": "192.0.2.12", "user": "root", "port": 22, "hostKey": None, "opts": opts}
    argv = ssh_argv(connection, tmp_path, None)
    # ssh keeps the first value it reads for an option.
    first = next(a for a in argv if a.startswith("StrictHostKeyChecking="))
    assert first == "StrictHostKeyChecking=yes" and argv.index("BatchMode=yes") < len(argv) - 4
    assert argv.index(first) < min((argv.index(o) for o in opts if o.startswith("Strict")), default=len(argv))
    ssh = shutil.which("ssh")
    if ssh:
        shown = subprocess.run([*argv[:-4], "-G", "192.0.2.12"], capture_output=True, text=True, timeout=30)
        settings = dict(line.split(" ", 1) for line in shown.stdout.splitlines())
        assert settings["stricthostkeychecking"] == "true" and settings["batchmode"] == "yes"


def test_the_key_file_is_created_for_this_user_only_and_never_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (tmp_path / "id").symlink_to(victim)
    connection = {"host": "192.0.2.12", "user": "root", "port": 22, "hostKey": None, "opts": []}
    with pytest.raises(FileExistsError):
        ssh_argv(connection, tmp_path, "-----BEGIN KEY-----\nabc")
    assert victim.read_text() == "untouched\n"


# Stands in for OpenSSH: says it started, then waits like a readiness poll of an hour.
SLOW_SSH = r"""
echo started > "$SSH_LOG"
exec sleep 60
"""


def key_dirs(pid: int) -> list[Path]:
    return sorted(Path(workdir_base()).glob(f"{WORKDIR_PREFIX}{pid}-*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_step_stopped_by_a_signal_removes_the_ssh_key(tmp_path, signum):
    stub(tmp_path / "ssh", SLOW_SSH)
    connection = {"host": "192.0.2.12", "user": "root", "port": 22, "hostKey": None, "opts": []}
    environment = {
        **os.environ,
        "DEPLOY_PYTHON": sys.executable,
        "NODE_SSH": json.dumps({"a2-1": connection}),
        "SSH_LOG": str(tmp_path / "ssh.log"),
        "SSH_PRIVATE_KEY": "-----BEGIN KEY-----\ncanary-private-key\n",
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
    }
    argv = [sys.executable, "-m", "checks", "docker", json.dumps({"node": "a2-1", "nodes": ["a2-1"]})]
    step = subprocess.Popen(argv, env=environment, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "ssh.log").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (directory,) = key_dirs(step.pid)
        assert (directory / "id").read_text() == environment["SSH_PRIVATE_KEY"]
        assert (directory / "id").stat().st_mode & 0o777 == 0o600
        step.send_signal(signum)
        step.wait(timeout=30)
    finally:
        step.kill()
        step.communicate()
    assert step.returncode != 0
    assert key_dirs(step.pid) == []


def test_a_key_left_behind_by_a_killed_step_is_removed_by_the_next_one(tmp_path):
    # SIGKILL cannot be caught: the directory names its dead process, so the next step knows.
    gone = subprocess.Popen(["true"])
    gone.wait()
    left = Path(workdir_base()) / f"{WORKDIR_PREFIX}{gone.pid}-abcd1234"
    running = Path(workdir_base()) / f"{WORKDIR_PREFIX}{os.getpid()}-abcd1234"
    for directory in (left, running):
        directory.mkdir()
        (directory / "id").write_text("key\n")
    try:
        stub(tmp_path / "docker", "echo 28.2.2")
        done = run_step(tmp_path, "docker", {"node": "a2-0"}, None)
        assert done.returncode == 0, done.stderr
        assert not left.exists() and (running / "id").exists()
    finally:
        shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(running, ignore_errors=True)


def test_an_update_replays_the_saved_report_without_running_anything():
    done = run_sh(f'PULUMI_COMMAND_STDOUT=\'{{"seen": "server 28.2.2"}}\'; export PULUMI_COMMAND_STDOUT; {REPLAY}')
    assert done.stdout == '{"seen": "server 28.2.2"}'
