"""Host checks before any container starts, so a wrong NIC, a down NPU link or a missing driver file
fails `pulumi up` in seconds with a precise message instead of hanging a cluster 20 minutes in.

Each check is one command on the node, named like the check it feeds; its output is judged by
the pure functions of `checks/`. A node's containers wait on `HostPreflight.passed` (and on the cluster-wide
checks), which fails with every problem at once.
"""

from __future__ import annotations

import pulumi

from checks import devices, disk, docker, driver_files, hccn, nic, npu_holders, npu_smi, ping
from checks.common import CheckResult, raise_if_failed
from core.config import AUTO_NIC
from core.plan import STACK_LABEL, ClusterPlan, NodePlan, under_root

from .nodecommand import node_command


class HostPreflight(pulumi.ComponentResource):
    """One node's checks: NPUs, devices, driver files, Docker, weights disk, NIC, NPU links."""

    hccn: pulumi.Output[str] | None
    report: pulumi.Output[dict]
    driver_version: pulumi.Output[str]
    nic: pulumi.Output[str]

    def __init__(self, name: str, plan: ClusterPlan, node: NodePlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:HostPreflight", name, None, opts)
        multi_node = len(plan.nodes) > 1
        commands = {
            "npu-health": npu_smi.npu_smi_command(),
            "dev-davinci": devices.dev_list_command(under_root(node.host_root, "/dev")),
            "driver-files": driver_files.driver_files_command(node.driver_paths, node.driver_version_file),
            "docker": docker.docker_version_command(),
            "npu-free": npu_holders.npu_holders_command(STACK_LABEL),
            "weights-disk": disk.df_command(node.weights_dir),
            "nic-ip": nic.ip_addr_command(),
        }
        if multi_node:
            commands["npu-network"] = hccn.hccn_command(node.npus)
        ran = {
            check: node_command(
                f"{name}-check-{check}",
                node,
                script,
                ssh_private_key=plan.ssh_private_key,
                # Checks re-run whenever the group is about to be replaced, not on every `up`.
                triggers=[plan.group_fingerprint],
                opts=pulumi.ResourceOptions(parent=self, aliases=_former_names(name, check)),
            )
            for check, script in commands.items()
        }
        outputs = {check: cmd.stdout for check, cmd in ran.items()}
        self.hccn = outputs.get("npu-network")
        # Resolves once every check of the node passed; fails with all of its problems at once.
        self.report = pulumi.Output.all(**outputs).apply(lambda out: judge_host(plan, node, out))
        self.driver_version = self.report.apply(lambda r: r["driver"])
        self.nic = self.report.apply(lambda r: r["nic"])
        self.register_outputs({"driverVersion": self.driver_version, "nic": self.nic})


def judge_host(plan: ClusterPlan, node: NodePlan, out: dict[str, str]) -> dict:
    """Every check of one node judged at once; raises HostCheckFailed listing all failures."""
    name = node.name
    health, idle = npu_smi.judge_npu_smi(name, out["npu-health"], node.npus)
    holders = npu_holders.judge_npu_holders(name, out["npu-free"], plan.stack)
    results = [health, holders]
    # Processes on the NPUs are foreign ones (e.g. a vllm outside Docker) unless this stack's own
    # container is running there, as it is while it gets replaced.
    if not holders.detail.get("own"):
        results.append(idle)
    results += [
        devices.judge_dev_davinci(name, out["dev-davinci"], node.npus),
        driver_files.judge_driver_files(name, out["driver-files"], node.driver_paths, node.driver_version_file),
        docker.judge_docker(name, out["docker"]),
        disk.judge_free_space(name, out["weights-disk"], node.weights_dir, plan.preflight.min_free_gib),
    ]
    nic_name = node.nic
    if node.nic == AUTO_NIC:
        try:
            nic_name = nic.discover_nic(out["nic-ip"], node.ip)
        except nic.NicDiscoveryError as error:
            results.append(CheckResult(name, "nic-ip", False, f"one interface holding {node.ip}", str(error)))
    if nic_name != AUTO_NIC:
        results.append(nic.judge_nic_ip(name, out["nic-ip"], nic_name, node.ip))
    if "npu-network" in out:
        results.append(hccn.judge_npu_network(name, out["npu-network"], node.npus))
    raise_if_failed(results)
    driver = next(r for r in results if r.check == "driver-files")
    return {"driver": driver.detail.get("version") or "unknown", "nic": nic_name}


class ClusterPreflight(pulumi.ComponentResource):
    """Checks across nodes: the same NPU TLS setting everywhere, and every NPU reaching its peers."""

    passed: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        hosts: dict[str, HostPreflight],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("deepseek-r1-ascend:index:ClusterPreflight", name, None, opts)
        hccn_outputs = {node: host.hccn for node, host in hosts.items()}
        tls = pulumi.Output.all(**hccn_outputs).apply(
            lambda outputs: raise_if_failed(hccn.judge_tls_consistency(outputs)) and "consistent"
        )
        pings = []
        for node in plan.nodes:
            peers = {peer: out for peer, out in hccn_outputs.items() if peer != node.name}
            script = pulumi.Output.all(**peers).apply(
                lambda outputs, node=node: ping.ping_command(_ping_targets(plan, node, outputs))
            )
            pinged = node_command(
                f"{node.name}-check-npu-ping",
                node,
                script,
                ssh_private_key=plan.ssh_private_key,
                triggers=[plan.group_fingerprint],
                opts=pulumi.ResourceOptions(parent=self),
            )
            pings.append(
                pinged.stdout.apply(lambda out, node=node: raise_if_failed([ping.judge_ping(node.name, out)]) and "ok")
            )
        self.passed = pulumi.Output.all(tls, *pings).apply(lambda _: "passed")
        self.register_outputs({"passed": self.passed})


def _ping_targets(plan: ClusterPlan, node: NodePlan, peer_outputs: dict[str, str]) -> list[ping.PingTarget]:
    peer_ips = {}
    for peer, output in peer_outputs.items():
        parsed = hccn.parse_hccn(output) or {}
        peer_ips[peer] = {npu: net.ipaddr for npu, net in parsed.items() if net.ipaddr}
    return ping.ping_targets(node.npus, peer_ips, same_index_only=plan.preflight.ping_pairs == "same-index")


# Each check's resource was once named after its tool; the aliases keep existing stacks' resources
# (no replacement, no second run) across that rename.
_FORMER_NAMES = {
    "npu-health": "npu-smi",
    "dev-davinci": "devices",
    "driver-files": "driver",
    "npu-free": "npu-holders",
    "weights-disk": "disk",
    "nic-ip": "nic",
    "npu-network": "hccn",
}


def _former_names(node: str, check: str) -> list[pulumi.Alias]:
    former = _FORMER_NAMES.get(check)
    return [pulumi.Alias(name=f"{node}-check-{former}")] if former else []
