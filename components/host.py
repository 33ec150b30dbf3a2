"""One Ascend server as Pulumi sees it: its Docker engine and the NPU hardware a container gets."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from core.plan import NodePlan


class AscendHost(pulumi.ComponentResource):
    """The node's Docker provider plus the device and driver-mount inputs of its vllm container."""

    provider: docker.Provider
    devices: list[docker.ContainerDeviceArgs]
    volumes: list[docker.ContainerVolumeArgs]

    def __init__(self, name: str, node: NodePlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:AscendHost", name, None, opts)
        self.provider = docker.Provider(
            f"{name}-docker",
            host=node.docker_host,
            ssh_opts=list(node.ssh_opts) or None,
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
