"""Host checks before any container starts, so a wrong NIC, a down NPU link or a missing driver file
fails `pulumi up` in seconds with a precise message instead of hanging a cluster 20 minutes in.

Each check is its own resource, `<node>-check-<check>`, named like the check in its message and
the README; it runs on its node and is judged there by `checks.steps` (see `nodecommand`). Every
container waits for every check of every node through one gate, `<cluster>-checks-passed`, and
every node's pings read their peers' NPU addresses from one step, `<cluster>-npu-ips`: each waits
for one resource, not for one per check or per peer, so the graph grows with the nodes.

The `image-host` check reads the node's pulled image (it waits for the `docker.RemoteImage`, and
runs again when the image's ID changes); the gate waits for it like for every other check, so no
node's container is created or replaced before every node's image is known to fit its host.
"""

from __future__ import annotations

import pulumi
import pulumi_command as command
import pulumi_docker

from checks import (
    board,
    compat,
    devices,
    disk,
    docker,
    driver_files,
    hccn,
    image,
    kv_ports,
    mooncake,
    nic,
    npu_holders,
    npu_smi,
    ping,
)
from checks.steps import CHECKS_PASSED, NPU_IPS
from core.config import AUTO_NIC
from core.plan import STACK_LABEL, ClusterPlan, NodePlan, under_root

from .nodecommand import node_step, report
from .secrecy import STEP_SOURCES, hidden

# Each check's resource was once named after its tool; the aliases keep existing stacks' resources
# (no replacement, no second run) across that rename.
_FORMER_NAMES = {
    npu_smi.HEALTH_CHECK: "npu-smi",
    devices.CHECK: "devices",
    driver_files.CHECK: "driver",
    npu_holders.CHECK: "npu-holders",
    disk.CHECK: "disk",
    nic.CHECK: "nic",
    hccn.NETWORK_CHECK: "hccn",
}


def _check(
    parent: pulumi.Resource,
    plan: ClusterPlan,
    node: NodePlan,
    check: str,
    spec: pulumi.Input[dict],
    on: list[NodePlan] | None = None,
) -> command.local.Command:
    """The resource `<node>-check-<check>`, run on `on` (default: the node itself)."""
    former = _FORMER_NAMES.get(check)
    return node_step(
        f"{node.name}-check-{check}",
        check,
        pulumi.Output.from_input(spec).apply(lambda s: {"node": node.name, **s}),
        on or [node],
        ssh_private_key=plan.ssh_private_key,
        # A passing check stays passed until the group is about to be replaced.
        triggers=[plan.group_fingerprint],
        opts=pulumi.ResourceOptions(
            parent=parent, aliases=[pulumi.Alias(name=f"{node.name}-check-{former}")] if former else None
        ),
    )


class HostPreflight(pulumi.ComponentResource):
    """One node's checks: NPUs and their boards, devices, driver files, Docker, weights disk, NIC,
    NPU links, and the node's pulled image against its driver and chip."""

    checks: dict[str, command.local.Command]
    driver_version: pulumi.Output[str]
    # The image's CANN version and the SoC it was built for, read from the image on the node.
    image_facts: pulumi.Output[dict]
    nic: pulumi.Output[str]
    npu_ips: pulumi.Output[dict] | None

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        node: NodePlan,
        pulled: pulumi_docker.RemoteImage,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`pulled` is the node's image: its check waits for the pull and reads that very image."""
        super().__init__("deepseek-r1-ascend:index:HostPreflight", name, None, opts)
        owner = {"label": STACK_LABEL, "stack": plan.stack}
        pairing = _pairing(plan)
        specs = {
            npu_smi.HEALTH_CHECK: {"npus": node.npus},
            npu_smi.IDLE_CHECK: {"npus": node.npus, **owner},
            devices.CHECK: {"devDir": under_root(node.host_root, "/dev"), "npus": node.npus},
            driver_files.CHECK: {"paths": list(node.driver_paths), "versionFile": node.driver_version_file},
            docker.CHECK: {},
            npu_holders.CHECK: owner,
            disk.CHECK: {"path": node.weights_dir, "minFreeGib": plan.preflight.min_free_gib},
            nic.CHECK: {"nic": node.nic, "ip": node.ip, "auto": AUTO_NIC},
            board.CHECK: {**pairing, **_hbm_share(plan), "npuIds": node.npus // _CHIPS_PER_NPU[plan.profile.name]},
            # The image's ID, not its tag: an image pulled anew under the same tag is checked anew.
            image.CHECK: pulled.image_id.apply(
                lambda image_id: {
                    **pairing,
                    "image": node.image,
                    "imageId": image_id,
                    "versionFile": node.driver_version_file,
                }
            ),
        }
        if len(plan.nodes) > 1:
            specs[hccn.NETWORK_CHECK] = {"npus": node.npus}
        if plan.kv is not None:
            # A prefill or decode instance: its KV ports free on the node, Mooncake in its image.
            kv = plan.kv
            specs[kv_ports.CHECK] = {"ranges": [[kv.kv_port, kv.last_port, kv.engine_id]], **owner}
            specs[mooncake.CHECK] = pulled.image_id.apply(lambda image_id: {"image": node.image, "imageId": image_id})
        self.checks = {check: _check(self, plan, node, check, spec) for check, spec in specs.items()}
        for check in (board.CHECK, image.CHECK):
            _warn(self.checks[check])
        self.driver_version = report(self.checks[driver_files.CHECK]).apply(lambda r: r["version"])
        self.image_facts = report(self.checks[image.CHECK]).apply(lambda r: {"cann": r["cann"], "soc": r["soc"]})
        self.nic = report(self.checks[nic.CHECK]).apply(lambda r: r["nic"])
        self.npu_ips = (
            report(self.checks[hccn.NETWORK_CHECK]).apply(lambda r: r["npuIps"])
            if hccn.NETWORK_CHECK in specs
            else None
        )
        self.register_outputs({"driverVersion": self.driver_version, "imageFacts": self.image_facts, "nic": self.nic})


# How many chips each npu-smi NPU id carries, per profile (the board check asks per NPU id).
_CHIPS_PER_NPU = compat.load().chips_per_npu


def _pairing(plan: ClusterPlan) -> dict:
    """What the image and board checks judge by: the profile and the site's table rows, which
    their specs (and so `pulumi preview`) show, and whose change runs them again."""
    rows = [row.model_dump(by_alias=True, exclude_none=True) for row in plan.preflight.compat_overrides]
    return {"profile": plan.profile.name, "overrides": rows}


def _hbm_share(plan: ClusterPlan) -> dict:
    """Every NPU holds an equal share of the model (one rank each): its share of model.requiredHbmGb."""
    npus = sum(n.npus for n in plan.nodes)
    return {
        "hbmGbNeeded": -(-plan.required_hbm_gb // npus),
        "hbmReason": f"model.requiredHbmGb {plan.required_hbm_gb} over {npus} NPUs",
    }


def _warn(check: command.local.Command) -> None:
    """A passing check's warnings, shown by every `pulumi up` (a saved report is replayed)."""
    report(check).apply(lambda r: [pulumi.log.warn(w, resource=check) for w in r.get("warnings") or []])


class ClusterPreflight(pulumi.ComponentResource):
    """Checks across nodes: the same NPU TLS setting everywhere, and every NPU reaching its peers."""

    checks: list[command.local.Command]

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        hosts: dict[str, HostPreflight],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("deepseek-r1-ascend:index:ClusterPreflight", name, None, opts)
        head = plan.head
        # Every node's NPU addresses meet in one resource, and each node's pings wait for it alone:
        # waiting for each peer's network check instead grows the graph with the square of the nodes.
        everyone = pulumi.Output.all(**{n: host.npu_ips for n, host in hosts.items()})
        npu_ips = report(
            _on_no_node(f"{name}-npu-ips", NPU_IPS, plan, everyone.apply(lambda ips: {"npuIps": ips}), self)
        ).apply(lambda r: r["npuIps"])
        self.checks = []
        for node in plan.nodes:
            # Queried afresh on this node and the head together: fixing either side clears it.
            pair = [head] if node is head else [head, node]
            self.checks.append(_check(self, plan, node, hccn.TLS_CHECK, {"npus": node.npus}, on=pair))
            targets = npu_ips.apply(
                lambda ips, node=node: {
                    "targets": _ping_targets(plan, node, {peer: v for peer, v in ips.items() if peer != node.name})
                }
            )
            self.checks.append(_check(self, plan, node, ping.CHECK, targets))
        self.register_outputs({})


def _ping_targets(plan: ClusterPlan, node: NodePlan, peer_ips: dict[str, dict[str, str]]) -> list[list]:
    peers = {peer: {int(npu): ip for npu, ip in ips.items()} for peer, ips in peer_ips.items()}
    same_index = plan.preflight.ping_pairs == "same-index"
    targets = ping.ping_targets(node.npus, peers, same_index_only=same_index)
    return [[t.local_npu, t.peer_node, t.peer_npu, t.peer_ip] for t in targets]


def checks_passed(
    name: str, plan: ClusterPlan, checks: list[command.local.Command], parent: pulumi.Resource
) -> command.local.Command:
    """The resource `<name>-checks-passed`, created once every one of `checks` has passed: what must
    wait for all of them waits for it alone, so the graph grows with the nodes, not with their
    square. Its report is how many checks passed."""
    return _on_no_node(f"{name}-checks-passed", CHECKS_PASSED, plan, {"checks": len(checks)}, parent, depends_on=checks)


def _on_no_node(
    name: str,
    step: str,
    plan: ClusterPlan,
    spec: pulumi.Input[dict],
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource] | None = None,
) -> command.local.Command:
    """A step of the whole group that reaches no node, judged on its spec alone."""
    return node_step(
        name,
        step,
        # No node tells it which settings are secret: it is as secret as the checks it follows.
        hidden(plan.head, spec, *STEP_SOURCES),
        [],
        ssh_private_key=None,
        # Like the checks: it runs again right after them, when the group is about to be replaced.
        triggers=[plan.group_fingerprint],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
