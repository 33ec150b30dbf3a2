"""A container beside the model on a node (core/sidecar.py): the front door, Prometheus, Grafana,
npu-exporter. Each is replaced on its own; none is in the group's fingerprint."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from core.sidecar import SIDECAR_RESTART, Sidecar

from .host import AscendHost
from .server import INIT_ERRORS


def sidecar_container(
    c: Sidecar,
    host: AscendHost,
    parent: pulumi.Resource,
    former_node: str | None,
    after: list[pulumi.Resource] | None = None,
) -> docker.Container:
    on_host = pulumi.ResourceOptions(parent=parent, provider=host.provider)
    # One resource per node and role; the container names may repeat on different hosts.
    resource = f"{c.node}-{c.role}"

    def renamed(suffix: str = "") -> pulumi.ResourceOptions:
        # A renamed node's containers keep their state, as its vllm container does.
        former = [pulumi.Alias(name=f"{former_node}-{c.role}{suffix}")] if former_node else None
        return pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(aliases=former))

    image = docker.RemoteImage(f"{resource}-image", name=c.image, keep_locally=True, opts=renamed("-image"))
    envs = [f"{k}={v}" for k, v in c.env]
    return docker.Container(
        resource,
        name=c.name,
        image=image.image_id,
        command=list(c.argv) or None,
        envs=pulumi.Output.secret(envs) if c.secret_env else envs,
        volumes=[
            docker.ContainerVolumeArgs(host_path=m.host_path, container_path=m.container_path, read_only=m.read_only)
            for m in c.mounts
        ],
        devices=[
            docker.ContainerDeviceArgs(host_path=d.host_path, container_path=d.container_path, permissions="rwm")
            for d in c.devices
        ]
        or None,
        uploads=[docker.ContainerUploadArgs(file=u.path, content=u.content) for u in c.uploads],
        network_mode="host",
        restart=SIDECAR_RESTART,
        must_run=True,
        labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in c.labels],
        opts=pulumi.ResourceOptions.merge(
            renamed(),
            # Its name and host ports stay taken until the old container is gone.
            # A container saved with init errors (created, not started) is replaced by the next up.
            pulumi.ResourceOptions(depends_on=after, delete_before_replace=True, replace_on_changes=[INIT_ERRORS]),
        ),
    )
