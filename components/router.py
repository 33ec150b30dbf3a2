"""Several data-parallel groups behind vllm-router and the front door, replaced one at a time.

Each group is a VllmCluster of its own. Between the groups sits one step per group, its membership
of the router (checks/membership.py): created after the group's containers, deleted (drained from
the router) before they stop. The groups are linked only through `depends_on`: group g+1's
containers wait for group g's membership. So when a change replaces several groups, the engine
drains and replaces group g, and only once g serves again (its membership's create waits for it
while another group serves) does it drain group g+1. On a first deployment no group serves yet, so
each membership returns at once and every group loads its weights at the same time.

The engine's rules this rests on (../shared/reference/pulumi-engine-semantics.md, and the engine
double that follows them): a container replaced delete-first deletes first the dependents whose
inputs come from it (the membership holds the group's container ids), and leaves those linked by
`depends_on` only (the next group) alone; the membership is delete-first itself, so a new one
never joins before the old one left.
"""

from __future__ import annotations

import json

import pulumi

from checks import membership
from core.deployment import Deployment
from core.plan import ClusterPlan, NodePlan
from core.router import worker_url

from .cluster import VllmCluster
from .host import AscendHost, write_known_hosts
from .nodecommand import node_step
from .sidecar import sidecar_container


class RoutedGroups(pulumi.ComponentResource):
    """Every group, the router and the front door before it, and each group's router membership."""

    endpoint: str
    groups: dict[str, VllmCluster]
    hosts: dict[str, AscendHost]

    def __init__(self, name: str, deployment: Deployment, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:RoutedGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plans = deployment.groups
        write_known_hosts(*plans)
        self.hosts = {n.name: AscendHost(n.name, n, opts=child) for g in plans for n in g.nodes}
        router = deployment.router
        at = router.container.node
        router_node = next(n for g in plans for n in g.nodes if n.name == at)
        routing = sidecar_container(router.container, self.hosts[at], self, None)
        if deployment.front_door is not None:
            sidecar_container(deployment.front_door, self.hosts[at], self, None)
        self.groups, self.memberships = {}, {}
        previous: list[pulumi.Resource] = []
        for plan in plans:
            cluster = VllmCluster(f"{name}-{plan.group}", plan, None, hosts=self.hosts, after=previous, opts=child)
            self.groups[plan.group] = cluster
            self.memberships[plan.group] = _membership(self, plan, cluster, router_node, routing, deployment)
            previous = [self.memberships[plan.group]]
        self.endpoint = deployment.endpoint
        self.register_outputs({"endpoint": self.endpoint})

    def summaries(self) -> dict:
        """Per group its own endpoint, nodes and state: the `groups` stack output."""
        return {
            group: {
                "endpoint": cluster.endpoint,
                "nodes": cluster.node_summaries(),
                "router": self.memberships[group].stdout.apply(json.loads),
                "verification": cluster.verification.outputs,
            }
            for group, cluster in self.groups.items()
        }


def _membership(
    parent: pulumi.Resource,
    plan: ClusterPlan,
    cluster: VllmCluster,
    router_node: NodePlan,
    routing: pulumi.Resource,
    deployment: Deployment,
) -> pulumi.Resource:
    spec = {
        "node": router_node.name,
        "group": plan.group,
        "router": deployment.router.url,
        "worker": worker_url(plan),
    }
    containers = cluster.containers
    return node_step(
        f"{plan.group}-router-membership",
        membership.JOIN,
        {
            **spec,
            "servedName": plan.served_model_name,
            "timeoutSeconds": plan.verify.readiness_timeout_seconds,
            "intervalSeconds": plan.verify.readiness_interval_seconds,
        },
        [router_node],
        ssh_private_key=plan.ssh_private_key,
        secrets={"VLLM_API_KEY": plan.api_key} if plan.api_key else None,
        # The group's containers: a new one means a new group to admit, and the old group's
        # membership is deleted (drained) before its containers stop.
        triggers=[c.id for c in containers],
        on_delete=(membership.DRAIN, {**spec, "drainSeconds": deployment.router.drain_seconds}),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[routing, *containers], delete_before_replace=True),
    )
