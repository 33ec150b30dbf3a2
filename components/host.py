"""One Ascend server as Pulumi sees it: its Docker engine and the NPU hardware a container gets."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pulumi
import pulumi_docker as docker

from core.plan import ClusterPlan, NodePlan

from .secrecy import hidden


class AscendHost(pulumi.ComponentResource):
    """The node's Docker provider plus the device and driver-mount inputs of its vllm container."""

    provider: docker.Provider
    devices: list[docker.ContainerDeviceArgs]
    volumes: list[docker.ContainerVolumeArgs]

    def __init__(self, name: str, node: NodePlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:AscendHost", name, None, opts)
        self.provider = docker.Provider(
            f"{name}-docker",
            host=hidden(node, node.docker_host, "nodes", "ssh"),
            ssh_opts=hidden(node, list(node.docker_ssh_opts), "nodes") if node.docker_ssh_opts else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.devices = [
            docker.ContainerDeviceArgs(host_path=d.host_path, container_path=d.container_path, permissions="rwm")
            for d in node.devices
        ]
        self.volumes = [
            docker.ContainerVolumeArgs(host_path=m.host_path, container_path=m.container_path, read_only=m.read_only)
            for m in node.mounts
        ]
        self.register_outputs({"dockerHost": node.docker_host})


def ssh_home() -> Path:
    """The directory ssh means by `~`: the user's entry in the password database, which is not
    always $HOME (under `sudo` without -H they differ)."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def write_known_hosts(plan: ClusterPlan) -> None:
    """Write the stack's pinned host keys where the Docker provider's `ssh` reads them.

    Written on every run, preview included, before any provider connects: the file follows
    `nodes[i].hostKey` and holds nothing else, so there is a single source of trust.
    """
    if not plan.known_hosts:
        return
    path = ssh_home() / plan.known_hosts_file.removeprefix("~/")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(plan.known_hosts)
    path.chmod(0o600)
