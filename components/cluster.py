"""The whole deployment: per node its host, checks and vllm server; then the service's verification."""

from __future__ import annotations

import pulumi

from checks import servicechecks
from core.config import TOKEN_ENV
from core.plan import ClusterPlan

from .host import AscendHost
from .nodecommand import node_command
from .preflight import ClusterPreflight, HostPreflight
from .server import VllmServer
from .verification import ServiceVerification


class VllmCluster(pulumi.ComponentResource):
    def __init__(self, name: str, plan: ClusterPlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:VllmCluster", name, None, opts)
        self.plan = plan
        child = pulumi.ResourceOptions(parent=self)
        self.hosts = {n.name: AscendHost(n.name, n, opts=child) for n in plan.nodes}
        self.preflight = (
            {n.name: HostPreflight(n.name, plan, n, opts=child) for n in plan.nodes} if plan.preflight.enabled else {}
        )
        cluster_checks = (
            ClusterPreflight(name, plan, self.preflight, opts=child) if self.preflight and len(plan.nodes) > 1 else None
        )
        # A DP group only works whole: no node starts before every node's checks have passed.
        all_checks = pulumi.Output.all(
            *[p.report for p in self.preflight.values()], *([cluster_checks.passed] if cluster_checks else [])
        )
        self.servers = {}
        staged = None
        for node in plan.nodes:
            checks = self.preflight.get(node.name)
            gate = None
            if checks is not None:
                gate = pulumi.Output.all(checks.driver_version, all_checks).apply(lambda values: values[0])
            if plan.stage_weights:
                staged = self._stage_weights(node, all_checks, after=staged)
            # No server waits for another: in data-parallel mode the head only turns ready once
            # every node's ranks have joined, so all containers must start together.
            self.servers[node.name] = VllmServer(
                node.name,
                node,
                self.hosts[node.name],
                plan.group_fingerprint,
                nic=checks.nic if checks is not None else node.nic,
                checked_driver=gate,
                after=[staged] if staged else None,
                opts=child,
            )
        containers = [s.container for s in self.servers.values()]
        self.verification = ServiceVerification(name, plan, containers, [c.id for c in containers], opts=child)
        self.endpoint = plan.endpoint
        self.register_outputs({"endpoint": self.endpoint, "servedModelName": plan.served_model_name})

    def _stage_weights(self, node, all_checks: pulumi.Output, after):
        """Download the weights once the checks passed; one node after another, so on a shared
        weights directory the first downloads and the others find its marker."""
        script = servicechecks.staging_command(node.image, node.weights_dir, self.plan.model, self.plan.use_modelscope)
        return node_command(
            f"{node.name}-stage-weights",
            node,
            all_checks.apply(lambda _: script),
            ssh_private_key=self.plan.ssh_private_key,
            secrets={k: v for k, v in node.env if k in TOKEN_ENV} or None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after] if after else None),
        )

    def node_summaries(self) -> dict:
        return {
            n.name: {
                "role": n.role,
                "ip": n.ip,
                "dataParallelRanks": list(n.ranks),
                "container": self.servers[n.name].container.name,
                "command": n.command_line,
                **(
                    {"driverVersion": self.preflight[n.name].driver_version, "nic": self.preflight[n.name].nic}
                    if n.name in self.preflight
                    else {}
                ),
            }
            for n in self.plan.nodes
        }
