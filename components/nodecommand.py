"""Run a shell command on a node: over SSH for a remote node, locally for the deployer's own engine."""

from __future__ import annotations

import pulumi
import pulumi_command as command

from checks.servicechecks import secrets_prelude
from core.plan import NodePlan


def node_command(
    name: str,
    node: NodePlan,
    create: pulumi.Input[str],
    *,
    ssh_private_key: str | None,
    opts: pulumi.ResourceOptions,
    secrets: dict[str, str] | None = None,
    triggers: list | None = None,
) -> command.local.Command | command.remote.Command:
    """A pulumi-command resource whose stdout carries the command's report.

    `secrets` (API key, tokens) reach the command as shell variables read from its standard
    input, never as part of its text, so neither the diff nor the log shows them. (SSH would
    drop them as environment variables unless every sshd had `AcceptEnv` for them.)
    """
    stdin = None
    if secrets:
        names = sorted(secrets)
        create = pulumi.Output.concat(secrets_prelude(names), create)
        stdin = pulumi.Output.secret("".join(f"{secrets[n]}\n" for n in names))
    # No script reads its previous output, and a check's or benchmark's output can be large
    # enough to overflow the environment (E2BIG) when handed back on a re-run.
    quiet = {"add_previous_output_in_env": False}
    if node.local_engine:
        return command.local.Command(
            name, create=create, stdin=stdin, triggers=triggers, interpreter=["/bin/sh", "-c"], opts=opts, **quiet
        )
    connection = command.remote.ConnectionArgs(
        host=node.ip,
        user=node.ssh_user,
        port=node.ssh_port,
        host_key=node.host_key,
        private_key=pulumi.Output.secret(ssh_private_key) if ssh_private_key else None,
    )
    return command.remote.Command(
        name, connection=connection, create=create, stdin=stdin, triggers=triggers, opts=opts, **quiet
    )
