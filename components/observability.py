"""Prometheus, Grafana and npu-exporter containers, as the observability plan lays them out.

Separate from the vllm servers on purpose: these containers take no part in the group's
fingerprint, so replacing one (a new dashboard, a threshold) never restarts the model.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from core.observability import OBS_RESTART, PROMETHEUS_UID, ObsContainer, ObservabilityPlan
from core.plan import ClusterPlan, find_node

from .host import AscendHost
from .nodecommand import node_step
from .server import INIT_ERRORS


class Observability(pulumi.ComponentResource):
    """Prometheus (and Grafana) on the observability node, npu-exporter on every node when configured."""

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        obs: ObservabilityPlan,
        hosts: dict[str, AscendHost],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("deepseek-r1-ascend:index:Observability", name, None, opts)
        node = find_node(plan, obs.node)
        # Docker would create a missing bind-mount source owned by root, which Prometheus cannot write.
        # The step hands over only a directory it creates itself (checks/steps.py), and validation
        # keeps every host system directory out of dataDir (core/observability_settings.py).
        data = node_step(
            f"{name}-prometheus-data",
            "owned-dir",
            {"node": node.name, "path": obs.prometheus_data_dir, "owner": PROMETHEUS_UID},
            [node],
            ssh_private_key=plan.ssh_private_key,
            opts=pulumi.ResourceOptions(parent=self),
        )
        for c in obs.containers:
            former = find_node(plan, c.node).renamed_from
            _container(c, hosts[c.node], self, former, after=[data] if c.role == "prometheus" else None)
        self.register_outputs({"prometheusUrl": obs.prometheus_url, "grafanaUrl": obs.grafana_url})


def _container(
    c: ObsContainer,
    host: AscendHost,
    parent: pulumi.Resource,
    former_node: str | None,
    after: list[pulumi.Resource] | None,
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
        uploads=[docker.ContainerUploadArgs(file=u.path, content=u.content) for u in c.uploads],
        network_mode="host",
        privileged=c.privileged,
        restart=OBS_RESTART,
        must_run=True,
        labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in c.labels],
        opts=pulumi.ResourceOptions.merge(
            renamed(),
            # Its name and host ports stay taken until the old container is gone.
            # A container saved with init errors (created, not started) is replaced by the next up.
            pulumi.ResourceOptions(depends_on=after, delete_before_replace=True, replace_on_changes=[INIT_ERRORS]),
        ),
    )
