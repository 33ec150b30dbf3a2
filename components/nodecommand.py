"""Run a shell command on a node: over SSH for a remote node, locally for the deployer's own engine."""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_command as command

from .plan import NodePlan


def node_command(
    name: str,
    node: NodePlan,
    create: pulumi.Input[str],
    *,
    ssh_private_key: Optional[str],
    opts: pulumi.ResourceOptions,
    environment: Optional[dict[str, str]] = None,
    triggers: Optional[list] = None,
) -> command.local.Command | command.remote.Command:
    """A pulumi-command resource whose stdout carries the command's report.

    `environment` values are secrets (API keys, tokens): they reach the command as variables,
    never as part of its text, so neither the diff nor the log shows them.
    """
    env = pulumi.Output.secret(environment) if environment else None
    if node.local_engine:
        return command.local.Command(
            name, create=create, environment=env, triggers=triggers, interpreter=["/bin/sh", "-c"], opts=opts
        )
    connection = command.remote.ConnectionArgs(
        host=node.ip,
        user=node.ssh_user,
        port=node.ssh_port,
        host_key=node.host_key,
        private_key=pulumi.Output.secret(ssh_private_key) if ssh_private_key else None,
    )
    return command.remote.Command(
        name, connection=connection, create=create, environment=env, triggers=triggers, opts=opts
    )
