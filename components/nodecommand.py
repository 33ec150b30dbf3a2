"""A step on the nodes (a check or a verification), as a local command of the deploying machine.

The command is `python -m checks <step> '<spec>'` (see `checks/__main__.py`): it reaches each node
with this machine's own `ssh`, the channel the Docker provider uses too, and the step's judge
decides inside the resource. A failing step fails its own create, so nothing failed is saved and
the next `pulumi up` runs it again; a passing step is saved with its report.

What re-runs a step, deliberately: its `triggers` hold the command (what runs and what it is
judged against) and what the caller names (the group fingerprint for checks, the containers for
verification). Everything else - the connection, the key, the interpreter, the secrets on stdin -
is an update, and an update only replays the saved report: a new SSH key re-runs nothing.

pulumi-command tells a secret from the same text in plain (its diff keeps the secret marking), so
the command in `triggers` is always a secret: marking a config key secret later changes only how
`create` is held, an update, and re-runs nothing either.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pulumi
import pulumi_command as command

from checks.steps import NODE_SSH_ENV, SSH_KEY_ENV
from core.plan import NodePlan

from .secrecy import STEP_SOURCES, hidden

PROJECT_DIR = Path(__file__).resolve().parent.parent
# pulumi-command hands an update the previous stdout in this variable; printing it keeps the report.
REPLAY = 'printf "%s" "$PULUMI_COMMAND_STDOUT"'


def step_command(step: str, spec: dict) -> str:
    """The command line of a step: readable in a diff, and free of connection details and secrets."""
    return f'"$DEPLOY_PYTHON" -m checks {step} {shlex.quote(json.dumps(spec, sort_keys=True))}'


def node_step(
    name: str,
    step: str,
    spec: pulumi.Input[dict],
    nodes: list[NodePlan],
    *,
    ssh_private_key: str | None,
    opts: pulumi.ResourceOptions,
    secrets: dict[str, str] | None = None,
    triggers: list | None = None,
    on_delete: tuple[str, dict] | None = None,
) -> command.local.Command:
    """Run `step` on `nodes` with `spec`; its stdout is the judge's report as JSON. `on_delete`:
    the step (and its spec) that runs on the same nodes when the resource is deleted.

    `secrets` (API key, tokens) reach the node's script on its standard input, never in its
    text, so neither the diff nor the log shows them (SSH servers drop unknown variables).
    A step on no node (`nodes=[]`) runs nothing and is judged on its spec alone; with no node to
    tell which settings are secret, its caller hides the spec itself.
    """
    names = sorted(secrets or {})

    def command_of(step: str, spec: dict) -> str:
        return step_command(step, {**spec, "nodes": [n.name for n in nodes], **({"secrets": names} if names else {})})

    create = pulumi.Output.from_input(spec).apply(lambda s: command_of(step, s))
    delete = command_of(*on_delete) if on_delete else None
    connections = json.dumps({n.name: n.ssh_connection for n in nodes}, sort_keys=True)
    if nodes:
        create = hidden(nodes[0], create, *STEP_SOURCES)
        delete = hidden(nodes[0], delete, *STEP_SOURCES) if delete else None
        connections = hidden(nodes[0], connections, "nodes", "ssh")
    environment: dict[str, pulumi.Input[str]] = {"DEPLOY_PYTHON": sys.executable, NODE_SSH_ENV: connections}
    if ssh_private_key:
        environment[SSH_KEY_ENV] = pulumi.Output.secret(ssh_private_key)
    stdin = pulumi.Output.secret("".join(f"{secrets[n]}\n" for n in names)) if secrets else None
    return command.local.Command(
        name,
        create=create,
        update=REPLAY,
        delete=delete,
        environment=environment,
        stdin=stdin,
        dir=str(PROJECT_DIR),
        # REPLAY needs it; a step's stdout and stderr are one short line each, never large.
        add_previous_output_in_env=True,
        triggers=[pulumi.Output.secret(create), *(triggers or [])],
        opts=opts,
    )


def report(cmd: command.local.Command) -> pulumi.Output[dict]:
    """The step's report (resolves only once the step passed)."""
    return cmd.stdout.apply(json.loads)
