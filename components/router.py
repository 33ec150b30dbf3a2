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

from checks import membership, servicechecks
from core.deployment import Deployment
from core.plan import ClusterPlan, NodePlan
from core.router import worker_url

from .cluster import VllmCluster
from .host import AscendHost, write_known_hosts
from .nodecommand import node_step, report
from .sidecar import sidecar_container


class RoutedGroups(pulumi.ComponentResource):
    """Every group, the router (or the prefill-decode proxy) and the front door before it, and
    each group's router membership (not with a PD proxy, whose backends are fixed at its start)."""

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
        door = sidecar_container(deployment.front_door, self.hosts[at], self, None) if deployment.front_door else None
        self.groups, self.memberships = {}, {}
        previous: list[pulumi.Resource] = []
        for plan in plans:
            cluster = VllmCluster(f"{name}-{plan.group}", plan, None, hosts=self.hosts, after=previous, opts=child)
            self.groups[plan.group] = cluster
            if router.rolls_out:
                self.memberships[plan.group] = _membership(self, plan, cluster, router_node, routing, deployment)
                previous = [self.memberships[plan.group]]
        # The service as clients see it: every group serves, then the tutorial's request through
        # the front door comes back right (a lost KV transfer answers with degenerate text).
        readiness = [c.verification.readiness for c in self.groups.values()]
        door_ids = [r.id for r in (routing, door) if r is not None]
        smoke = node_step(
            f"{name}-front-door-smoke-test",
            "smoke-test",
            {
                "node": router_node.name,
                "url": deployment.local_url,
                "request": plans[0].smoke_request,
                # The router admits a group a few health checks after it serves.
                "retrySeconds": 120,
            },
            [router_node],
            ssh_private_key=plans[0].ssh_private_key,
            secrets={"VLLM_API_KEY": plans[0].api_key} if plans[0].api_key else None,
            triggers=[*(c.id for g in self.groups.values() for c in g.containers), *door_ids],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*readiness, routing, *([door] if door else [])]),
        )
        self.smoke = report(smoke).apply(lambda r: r["result"])
        self.benchmark = (
            _benchmark(self, name, deployment, router_node, smoke) if deployment.benchmark.enabled else None
        )
        self.endpoint = deployment.endpoint
        self.register_outputs({"endpoint": self.endpoint})

    def summaries(self) -> dict:
        """Per group its own endpoint, nodes and state: the `groups` stack output."""
        return {
            group: {
                "endpoint": cluster.endpoint,
                "nodes": cluster.node_summaries(),
                "verification": cluster.verification.outputs,
                **({"router": self.memberships[group].stdout.apply(json.loads)} if group in self.memberships else {}),
                **({"role": cluster.plan.kv.role} if cluster.plan.kv else {}),
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


def _benchmark(
    parent: pulumi.Resource, name: str, deployment: Deployment, node: NodePlan, after: pulumi.Resource
) -> pulumi.Output[dict]:
    """`vllm bench serve` through the front door, from the vllm container on the router's node."""
    plan = next(g for g in deployment.groups if node in g.nodes)
    settings = deployment.benchmark
    spec = {
        "node": node.name,
        "container": node.container_name,
        "servedName": plan.served_model_name,
        "url": deployment.local_url,
        "model": plan.model,
        "settings": settings.model_dump(by_alias=True),
        "stack": plan.stack,
    }
    bench = node_step(
        f"{name}-benchmark",
        "benchmark",
        spec,
        [node],
        ssh_private_key=plan.ssh_private_key,
        secrets={"VLLM_API_KEY": plan.api_key} if plan.api_key else None,
        triggers=[after.id],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[after]),
    )
    result_file = servicechecks.benchmark_result_file(settings, plan.stack)
    return report(bench).apply(lambda r: {**r["result"], "resultFile": result_file})
