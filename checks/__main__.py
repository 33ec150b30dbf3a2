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
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from .steps import NODE_SSH_ENV, SSH_KEY_ENV, STEPS, StepFailed, node_script

# ssh's own exit status when it could not connect or log in.
SSH_FAILED = 255
# How a long step (readiness) reports its progress while it waits.
PROGRESS = "waiting for "


def ssh_argv(connection: dict, workdir: Path, private_key: str | None) -> list[str]:
    """This machine's `ssh` with the Docker provider's options for the node (they come first, and
    ssh keeps the first value it reads), never prompting; pinned to the node's hostKey."""
    opts = list(connection.get("opts") or [])
    argv = ["ssh", "-T", *opts, "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=30"]
    if connection.get("hostKey") and not any(o.startswith("UserKnownHostsFile=") for o in opts):
        # A node whose Docker is not reached over SSH has no known_hosts file of the stack's.
        known = workdir / "known_hosts"
        host = connection["host"] if connection["port"] == 22 else f"[{connection['host']}]:{connection['port']}"
        known.write_text(f"{host} {connection['hostKey']}\n")
        argv += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
    if private_key:
        identity = workdir / "id"
        identity.write_text(private_key if private_key.endswith("\n") else private_key + "\n")
        identity.chmod(0o600)
        argv += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
    return argv + ["-p", str(connection["port"]), "-l", connection["user"]]


def run_on(node: str, connection: dict | None, script: str, stdin: bytes) -> str:
    with tempfile.TemporaryDirectory(prefix="deepseek-r1-ascend-") as workdir:
        if connection is None:
            argv = ["/bin/sh", "-c", script]
        else:
            argv = ssh_argv(connection, Path(workdir), os.environ.get(SSH_KEY_ENV))
            argv += ["--", connection["host"], "sh -c " + shlex.quote(script)]
        with tempfile.TemporaryFile() as errors:
            done = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
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


def main(argv: list[str]) -> int:
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
    sys.exit(main(sys.argv[1:]))
