"""Prometheus, Grafana and npu-exporter containers, as the observability plan lays them out.

Separate from the vllm servers on purpose (components/sidecar.py): replacing one (a new
dashboard, a threshold) never restarts the model.
"""

from __future__ import annotations

import pulumi

from core.observability import PROMETHEUS_UID, ObservabilityPlan
from core.plan import ClusterPlan

from .host import AscendHost
from .nodecommand import node_step
from .sidecar import sidecar_container


class Observability(pulumi.ComponentResource):
    """Prometheus (and Grafana) on the observability node, npu-exporter on every node when configured."""

    def __init__(
        self,
        name: str,
        groups: tuple[ClusterPlan, ...],
        obs: ObservabilityPlan,
        hosts: dict[str, AscendHost],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("deepseek-r1-ascend:index:Observability", name, None, opts)
        nodes = {n.name: n for g in groups for n in g.nodes}
        node = nodes[obs.node]
        # Docker would create a missing bind-mount source owned by root, which Prometheus cannot write.
        # The step hands over only a directory it creates itself (checks/steps.py), and validation
        # keeps every host system directory out of dataDir (core/observability_settings.py).
        data = node_step(
            f"{name}-prometheus-data",
            "owned-dir",
            {"node": node.name, "path": obs.prometheus_data_dir, "owner": PROMETHEUS_UID},
            [node],
            ssh_private_key=groups[0].ssh_private_key,
            opts=pulumi.ResourceOptions(parent=self),
        )
        for c in obs.containers:
            former = nodes[c.node].renamed_from
            sidecar_container(c, hosts[c.node], self, former, after=[data] if c.role == "prometheus" else None)
        self.register_outputs({"prometheusUrl": obs.prometheus_url, "grafanaUrl": obs.grafana_url})
