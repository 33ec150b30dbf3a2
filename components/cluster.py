"""The whole deployment: one host and one vllm server per node, node 0 heading the DP group."""

from __future__ import annotations

import pulumi

from .host import AscendHost
from .plan import ClusterPlan
from .server import VllmServer


class VllmCluster(pulumi.ComponentResource):
    def __init__(self, name: str, plan: ClusterPlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:VllmCluster", name, None, opts)
        self.plan = plan
        self.hosts = {}
        self.servers = {}
        for node in plan.nodes:
            host = AscendHost(node.name, node, opts=pulumi.ResourceOptions(parent=self))
            # No server waits for another: in data-parallel mode the head only turns ready once
            # every node's ranks have joined, so all containers must start together.
            self.hosts[node.name] = host
            self.servers[node.name] = VllmServer(
                node.name, node, host, plan.group_fingerprint, opts=pulumi.ResourceOptions(parent=self)
            )
        self.endpoint = plan.endpoint
        self.register_outputs({"endpoint": self.endpoint, "servedModelName": plan.served_model_name})

    def node_summaries(self) -> dict:
        return {
            n.name: {
                "role": n.role,
                "ip": n.ip,
                "dataParallelRanks": list(n.ranks),
                "container": self.servers[n.name].container.name,
                "command": n.command_line,
            }
            for n in self.plan.nodes
        }
