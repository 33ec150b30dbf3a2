"""The whole deployment: per node its host, checks and vllm server; then the service's verification."""

from __future__ import annotations

import pulumi

from checks import servicechecks
from core.config import TOKEN_ENV
from core.plan import ClusterPlan, NodePlan

from .host import AscendHost, write_known_hosts
from .nodecommand import node_command
from .preflight import ClusterPreflight, HostPreflight
from .server import VllmServer
from .verification import ServiceVerification


class VllmCluster(pulumi.ComponentResource):
    """Every node's host, checks and vllm server, started together as one data-parallel group, and
    the verification of the service they form."""

    endpoint: str
    verification: ServiceVerification
    # Each node's Docker provider; observability places its containers on them too.
    hosts: dict[str, AscendHost]

    def __init__(self, name: str, plan: ClusterPlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:VllmCluster", name, None, opts)
        self._plan = plan
        child = pulumi.ResourceOptions(parent=self)
        write_known_hosts(plan)
        per_node = {n.name: _node_options(self, n) for n in plan.nodes}
        self.hosts = {n.name: AscendHost(n.name, n, opts=per_node[n.name]) for n in plan.nodes}
        self._preflight = (
            {n.name: HostPreflight(n.name, plan, n, opts=per_node[n.name]) for n in plan.nodes}
            if plan.preflight.enabled
            else {}
        )
        cluster_checks = (
            ClusterPreflight(name, plan, self._preflight, opts=child)
            if self._preflight and len(plan.nodes) > 1
            else None
        )
        # A DP group only works whole: no node starts before every node's checks have passed.
        all_checks = pulumi.Output.all(
            *[p.report for p in self._preflight.values()], *([cluster_checks.passed] if cluster_checks else [])
        )
        self._servers: dict[str, VllmServer] = {}
        staged = None
        for node in plan.nodes:
            checks = self._preflight.get(node.name)
            gate = None
            if checks is not None:
                gate = pulumi.Output.all(checks.driver_version, all_checks).apply(lambda values: values[0])
            if plan.stage_weights:
                staged = self._stage_weights(node, all_checks, after=staged)
            # No server waits for another: in data-parallel mode the head only turns ready once
            # every node's ranks have joined, so all containers must start together.
            self._servers[node.name] = VllmServer(
                node.name,
                node,
                self.hosts[node.name],
                plan.group_fingerprint,
                nic=checks.nic if checks is not None else node.nic,
                checked_driver=gate,
                after=[staged] if staged else None,
                opts=per_node[node.name],
            )
        containers = [s.container for s in self._servers.values()]
        self.verification = ServiceVerification(name, plan, containers, [c.id for c in containers], opts=child)
        self.endpoint = plan.endpoint
        self.register_outputs({"endpoint": self.endpoint, "servedModelName": plan.served_model_name})

    def _stage_weights(self, node, all_checks: pulumi.Output, after):
        """Download the weights once the checks passed; one node after another, so on a shared
        weights directory the first downloads and the others find its marker."""
        script = servicechecks.staging_command(
            node.image, node.weights_dir, self._plan.model, self._plan.use_modelscope
        )
        return node_command(
            f"{node.name}-stage-weights",
            node,
            all_checks.apply(lambda _: script),
            ssh_private_key=self._plan.ssh_private_key,
            secrets={k: v for k, v in node.env if k in TOKEN_ENV} or None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after] if after else None),
        )

    def node_summaries(self) -> dict:
        """Per node what runs where: the `nodes` stack output."""
        return {
            n.name: {
                "role": n.role,
                "ip": n.ip,
                "dataParallelRanks": list(n.ranks),
                "container": self._servers[n.name].container.name,
                "command": n.command_line,
                **(
                    {"driverVersion": self._preflight[n.name].driver_version, "nic": self._preflight[n.name].nic}
                    if n.name in self._preflight
                    else {}
                ),
            }
            for n in self._plan.nodes
        }


def _node_options(cluster: VllmCluster, node: NodePlan) -> pulumi.ResourceOptions:
    """A renamed node's components keep their former name as an alias, and so do their children
    named after them: the engine then updates or replaces its container in place instead of
    starting a second one on the same NPUs."""
    aliases = [pulumi.Alias(name=node.renamed_from)] if node.renamed_from else None
    return pulumi.ResourceOptions(parent=cluster, aliases=aliases)
