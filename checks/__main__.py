"""`python -m checks <step> '<spec>'`: run one step on its node(s) and judge what they printed.

Every check and verification resource of the program is a local command running this on the
deploying machine. It reaches a node the way the Docker provider does, with this machine's own
`ssh` (or runs the script here for a node whose Docker is the local engine), hands the output to
the step's judge in `checks.steps`, and prints the judge's report as one JSON line. A failing
judgement prints its one-line message and exits 1, which fails the resource's create: nothing
failed is saved, so the next `pulumi up` runs the step again.

Environment (resource inputs that change no step's outcome, so changing them re-runs nothing):
`NODE_SSH` maps each node to its SSH connection (`host`, `user`, `port`, `hostKey`, `opts`) or to
null for the local engine; `SSH_PRIVATE_KEY` is the key to log in with (else the agent or the
user's own keys). Standard input carries the step's secrets, one per line, to the node.

`ssh` reads a key only from a file, so `SSH_PRIVATE_KEY` is written for the step's life to a file
only this user can read, in a directory of its own on /dev/shm (memory) where there is one. The
step removes it on every way out it can see: success, failure, SIGTERM, SIGINT, SIGHUP. SIGKILL
leaves it behind, and the next step of this user removes it (its directory names the dead process).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .steps import NODE_SSH_ENV, SSH_KEY_ENV, STEPS, StepFailed, node_script

# ssh's own exit status when it could not connect or log in.
SSH_FAILED = 255
# How a long step (readiness) reports its progress while it waits.
PROGRESS = "waiting for "
# A step's working directory (the SSH key, a node's pinned host key): named after the process
# that made it, so a later step can tell one left behind by a killed process from a running one's.
WORKDIR_PREFIX = "deepseek-r1-ascend-"
_WORKDIR = re.compile(rf"{re.escape(WORKDIR_PREFIX)}(\d+)-[^/]+")
# The signals a cancelled `pulumi up` (or Ctrl-C) sends: each unwinds the step, which removes
# its working directory, key included. SIGKILL cannot be caught: the next step sweeps up after it.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Every ssh of a step: never a prompt, never a host key trusted on first use.
_STRICT = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]


def workdir_base() -> str:
    """Where steps keep their working directories: /dev/shm (memory, never a disk) when this
    machine has it, else the temporary directory."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return tempfile.gettempdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_workdirs(base: str) -> list[str]:
    """Remove this user's step directories whose process is gone (a step killed with SIGKILL)."""
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _WORKDIR.fullmatch(entry.name)
        try:
            mine = entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == os.getuid()
        except OSError:
            continue
        if match and mine and not _alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _write_private(path: Path, text: str) -> None:
    """Create `path` readable by this user only from the first byte on (never another file's
    content through a link)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ssh_argv(connection: dict, workdir: Path, private_key: str | None) -> list[str]:
    """This machine's `ssh`, never prompting and always checking the host key strictly (against
    the node's hostKey when pinned, else the user's own known_hosts: never trust on first use),
    then the Docker provider's options for the node. ssh keeps the first value it reads for an
    option, so neither those nor the site's sshOpts can loosen these."""
    opts = list(connection.get("opts") or [])
    # The Docker provider's options for an ssh:// host start with these already.
    strict = [] if opts[: len(_STRICT)] == _STRICT else _STRICT
    argv = ["ssh", "-T", *strict, *opts]
    argv += ["-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=30"]
    if connection.get("hostKey") and not any(o.startswith("UserKnownHostsFile=") for o in opts):
        # A node whose Docker is not reached over SSH has no known_hosts file of the stack's.
        known = workdir / "known_hosts"
        host = connection["host"] if connection["port"] == 22 else f"[{connection['host']}]:{connection['port']}"
        known.write_text(f"{host} {connection['hostKey']}\n")
        argv += ["-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null"]
    if private_key:
        identity = workdir / "id"
        _write_private(identity, private_key if private_key.endswith("\n") else private_key + "\n")
        argv += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
    return argv + ["-p", str(connection["port"]), "-l", connection["user"]]


def run_on(node: str, connection: dict | None, script: str, stdin: bytes) -> str:
    prefix = f"{WORKDIR_PREFIX}{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=workdir_base()) as workdir:
        if connection is None:
            argv = ["/bin/sh", "-c", script]
        else:
            argv = ssh_argv(connection, Path(workdir), os.environ.get(SSH_KEY_ENV))
            argv += ["--", connection["host"], "sh -c " + shlex.quote(script)]
        with tempfile.TemporaryFile() as errors:
            done = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
            try:
                done.stdin.write(stdin)
                done.stdin.close()
                lines = []
                for raw in done.stdout:
                    line = raw.decode(errors="replace")
                    lines.append(line)
                    if line.startswith(PROGRESS):
                        # A long wait's progress reaches the console while it runs.
                        print(line, end="", file=sys.stderr, flush=True)
                code = done.wait()
            finally:
                # Stopped by a signal: the node's command goes with the step.
                if done.poll() is None:
                    done.kill()
                    done.wait()
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
    stdout = "".join(lines)
    if connection is not None and code == SSH_FAILED:
        reason = (stderr.strip().splitlines() or ["no reason given"])[-1]
        raise StepFailed(
            f"node {node}: cannot run the step over SSH ({reason}); check nodes[].ip, ssh.user, ssh.port, "
            "the node's hostKey and your key, then run `pulumi up` again"
        )
    if code != 0 and stderr.strip():
        # What the step said on its way out (readiness: the container's last log lines).
        return stdout + stderr
    return stdout


def _stop(signum: int, _frame) -> None:
    # Unwinds like an exception, so every `with` block cleans up (the SSH key above all).
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    sweep_stale_workdirs(workdir_base())
    name, spec = argv[0], json.loads(argv[1])
    step = STEPS[name]
    connections = json.loads(os.environ.get(NODE_SSH_ENV) or "{}")
    script = node_script(name, spec)
    stdin = sys.stdin.buffer.read() if spec.get("secrets") else b""
    try:
        outputs = {node: run_on(node, connections.get(node), script, stdin) for node in spec["nodes"]}
        report = step.judge(spec, outputs)
    except StepFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _stop)
    sys.exit(main(sys.argv[1:]))
