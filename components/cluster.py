"""The whole deployment: per node its host, checks and vllm server; then the service's verification."""

from __future__ import annotations

import pulumi

from core.config import AUTO_NIC, TOKEN_ENV
from core.connection import machine
from core.plan import ClusterPlan, NodePlan
from core.sidecar import Sidecar

from .host import AscendHost, write_known_hosts
from .nodecommand import node_step
from .preflight import ClusterPreflight, HostPreflight, checks_passed
from .secrecy import hidden
from .server import VllmServer
from .sidecar import sidecar_container
from .verification import ServiceVerification


class VllmCluster(pulumi.ComponentResource):
    """Every node's host, checks and vllm server, started together as one data-parallel group, the
    front door clients reach them by, and the verification of the service they form."""

    endpoint: pulumi.Input[str]
    plan: ClusterPlan
    verification: ServiceVerification
    # The nodes' vllm containers, head first.
    containers: list[pulumi.CustomResource]
    # Each node's Docker provider; observability places its containers on them too.
    hosts: dict[str, AscendHost]

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        front_door: Sidecar | None,
        hosts: dict[str, AscendHost] | None = None,
        after: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`front_door`: the proxy clients reach the API by (core/front_door.py), None without one
        (or when the router's node has it). `hosts`: the nodes' hosts when a caller holding several
        groups declared them; `after`: what the containers wait for besides the checks (the
        previous group's membership of the router)."""
        super().__init__("deepseek-r1-ascend:index:VllmCluster", name, None, opts)
        self.plan = plan
        child = pulumi.ResourceOptions(parent=self)
        per_node = {n.name: _node_options(self, n) for n in plan.nodes}
        if hosts is None:
            write_known_hosts(plan)
            hosts = {n.name: AscendHost(n.name, n, opts=per_node[n.name]) for n in plan.nodes}
        self.hosts = hosts
        # Every node's image first: the checks read the pulled image, and the gate below waits for
        # them, so a node whose host does not fit its image stops every container's replacement.
        self._servers = {n.name: VllmServer(n.name, n, self.hosts[n.name], opts=per_node[n.name]) for n in plan.nodes}
        self._preflight = (
            {
                n.name: HostPreflight(n.name, plan, n, self._servers[n.name].image, opts=per_node[n.name])
                for n in plan.nodes
            }
            if plan.preflight.enabled
            else {}
        )
        cluster_checks = (
            ClusterPreflight(name, plan, self._preflight, opts=child)
            if self._preflight and len(plan.nodes) > 1
            else None
        )
        # A DP group only works whole: no node starts before every node's checks have passed.
        # Containers and stagings wait for the one gate that waits for every check (not on each
        # check themselves), and only through `depends_on`: re-running it replaces no container.
        all_checks = [c for p in self._preflight.values() for c in p.checks.values()]
        all_checks += cluster_checks.checks if cluster_checks else []
        gate = [checks_passed(name, plan, all_checks, self)] if all_checks else []
        # A node moved to another machine changes the whole group's fingerprint, so no container
        # or staging goes before every node is known to be where it was deployed
        # (AscendHost.placed); through one resource that waits for them all, as the gate does.
        placed = pulumi.Output.all(*[host.placed for host in self.hosts.values()]).apply(lambda _: len(plan.nodes))
        gate.append(pulumi.Stash(f"{name}-nodes-placed", input=placed, opts=child))
        head_staged: list[pulumi.Resource] = []
        for node in plan.nodes:
            checks = self._preflight.get(node.name)
            stage = None
            if plan.stage_weights:
                # Shared weights directory: the head downloads, the others only verify its marker;
                # otherwise every node downloads at once. Either way the chain is as deep for 2 nodes as for 32.
                verify = plan.weights_shared and node is not plan.head

                def stage(image, node=node, verify=verify, after=head_staged):
                    return self._stage_weights(node, "verify" if verify else "download", [*gate, image, *after])

            # No server waits for another: in data-parallel mode the head only turns ready once
            # every node's ranks have joined, so all containers must start together.
            self._servers[node.name].start(
                plan.group_fingerprint,
                # An explicit NIC is known at preview; only `nic: auto` waits for the preflight.
                nic=checks.nic if checks is not None and node.nic == AUTO_NIC else node.nic,
                driver=checks.driver_version if checks is not None else None,
                image_facts=checks.image_facts if checks is not None else None,
                after=[*gate, *(after or []), *self._behind_the_head(node)],
                stage=stage,
            )
            if plan.stage_weights and plan.weights_shared and node is plan.head:
                head_staged = [self._servers[node.name].staged]
        self.containers = containers = [s.container for s in self._servers.values()]
        door = (
            sidecar_container(front_door, self.hosts[front_door.node], self, plan.head.renamed_from, after=gate)
            if front_door
            else None
        )
        self.verification = ServiceVerification(
            name, plan, containers, [c.id for c in containers], front_door=door, opts=child
        )
        self.endpoint = hidden(plan.head, plan.endpoint, "nodes", "serve", "frontDoor")
        self.register_outputs({"endpoint": self.endpoint, "servedModelName": plan.served_model_name})

    def _behind_the_head(self, node: NodePlan) -> list[pulumi.Resource]:
        """Behind the router, a group's other containers wait for its head's: replaced, the head's
        goes first, after the group's drain from the router (the membership's delete, which only the
        head's replacement waits for), so no node stops while the group still has requests."""
        plan = self.plan
        if plan.group is None or node is plan.head:
            return []
        return [self._servers[plan.head.name].container]

    def _stage_weights(self, node: NodePlan, mode: str, after: list[pulumi.Resource]) -> pulumi.Resource:
        """Download the weights (or verify another node's download) once every check passed and the
        node's image is there, with the image's own tools."""
        plan = self.plan
        spec = {
            "node": node.name,
            "image": node.image,
            "weightsDir": node.weights_dir,
            "model": plan.model,
            "useModelscope": plan.use_modelscope,
            "mode": mode,
        }
        return node_step(
            f"{node.name}-stage-weights",
            "stage-weights",
            spec,
            [node],
            ssh_private_key=plan.ssh_private_key,
            secrets={k: v for k, v in node.env if k in TOKEN_ENV} or None,
            # A node accepted on another machine (see AscendHost) stages its weights there.
            triggers=[pulumi.Output.secret(machine(node.docker_host))],
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )

    def node_summaries(self) -> dict:
        """Per node what runs where: the `nodes` stack output."""
        return {
            n.name: {
                "role": n.role,
                "ip": hidden(n, n.ip, "nodes"),
                "dataParallelRanks": list(n.ranks),
                "container": self._servers[n.name].container.name,
                "command": hidden(n, n.command_line, "serve", "model", "nodes"),
                **(
                    {
                        "driverVersion": self._preflight[n.name].driver_version,
                        "nic": self._preflight[n.name].nic,
                        # The image's CANN version and the SoC it was built for, read from it.
                        "image": self._preflight[n.name].image_facts,
                    }
                    if n.name in self._preflight
                    else {}
                ),
            }
            for n in self.plan.nodes
        }


def _node_options(cluster: VllmCluster, node: NodePlan) -> pulumi.ResourceOptions:
    """A renamed node's components keep their former name as an alias, and so do their children
    named after them: the engine then updates or replaces its container in place instead of
    starting a second one on the same NPUs."""
    aliases = [pulumi.Alias(name=node.renamed_from)] if node.renamed_from else None
    return pulumi.ResourceOptions(parent=cluster, aliases=aliases)
