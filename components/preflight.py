"""Host checks before any container starts, so a wrong NIC, a down NPU link or a missing driver file
fails `pulumi up` in seconds with a precise message instead of hanging a cluster 20 minutes in.

Each check is one command on the node; its output is judged by the pure functions of
`hostchecks`. A node's containers wait on `HostPreflight.passed` (and on the cluster-wide
checks), which fails with every problem at once.
"""

from __future__ import annotations

import pulumi

from checks import hostchecks
from core.config import AUTO_NIC
from core.plan import STACK_LABEL, ClusterPlan, NodePlan, under_root

from .nodecommand import node_command


class HostPreflight(pulumi.ComponentResource):
    """One node's checks: NPUs, devices, driver files, Docker, weights disk, NIC, NPU links."""

    def __init__(self, name: str, plan: ClusterPlan, node: NodePlan, opts: pulumi.ResourceOptions | None = None):
        super().__init__("deepseek-r1-ascend:index:HostPreflight", name, None, opts)
        multi_node = len(plan.nodes) > 1
        commands = {
            "npu-smi": hostchecks.npu_smi_command(),
            "devices": hostchecks.dev_list_command(under_root(node.host_root, "/dev")),
            "driver": hostchecks.driver_files_command(node.driver_paths, node.driver_version_file),
            "docker": hostchecks.docker_version_command(),
            "npu-holders": hostchecks.npu_holders_command(STACK_LABEL),
            "disk": hostchecks.df_command(node.weights_dir),
            "nic": hostchecks.ip_addr_command(),
        }
        if multi_node:
            commands["hccn"] = hostchecks.hccn_command(node.npus)
        self.commands = {
            check: node_command(
                f"{name}-check-{check}",
                node,
                script,
                ssh_private_key=plan.ssh_private_key,
                # Checks re-run whenever the group is about to be replaced, not on every `up`.
                triggers=[plan.group_fingerprint],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for check, script in commands.items()
        }
        outputs = {check: cmd.stdout for check, cmd in self.commands.items()}
        self.hccn = outputs.get("hccn")
        self.report = pulumi.Output.all(**outputs).apply(lambda out: judge_host(plan, node, out))
        self.driver_version = self.report.apply(lambda r: r["driver"])
        self.nic = self.report.apply(lambda r: r["nic"])
        self.register_outputs({"driverVersion": self.driver_version, "nic": self.nic})


def judge_host(plan: ClusterPlan, node: NodePlan, out: dict[str, str]) -> dict:
    """Every check of one node judged at once; raises HostCheckFailed listing all failures."""
    name = node.name
    health, idle = hostchecks.judge_npu_smi(name, out["npu-smi"], node.npus)
    holders = hostchecks.judge_npu_holders(name, out["npu-holders"], plan.stack)
    results = [health, holders]
    # Processes on the NPUs are foreign ones (e.g. a vllm outside Docker) unless this stack's own
    # container is running there, as it is while it gets replaced.
    if not holders.detail.get("own"):
        results.append(idle)
    results += [
        hostchecks.judge_dev_davinci(name, out["devices"], node.npus),
        hostchecks.judge_driver_files(name, out["driver"], node.driver_paths, node.driver_version_file),
        hostchecks.judge_docker(name, out["docker"]),
        hostchecks.judge_free_space(name, out["disk"], node.weights_dir, plan.preflight.min_free_gib),
    ]
    nic = node.nic
    if node.nic == AUTO_NIC:
        try:
            nic = hostchecks.discover_nic(out["nic"], node.ip)
        except hostchecks.NicDiscoveryError as error:
            results.append(
                hostchecks.CheckResult(name, "nic-ip", False, f"one interface holding {node.ip}", str(error))
            )
    if nic != AUTO_NIC:
        results.append(hostchecks.judge_nic_ip(name, out["nic"], nic, node.ip))
    if "hccn" in out:
        results.append(hostchecks.judge_npu_network(name, out["hccn"], node.npus))
    hostchecks.raise_if_failed(results)
    driver = next(r for r in results if r.check == "driver-files")
    return {"driver": driver.detail.get("version") or "unknown", "nic": nic}


class ClusterPreflight(pulumi.ComponentResource):
    """Checks across nodes: the same NPU TLS setting everywhere, and every NPU reaching its peers."""

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        hosts: dict[str, HostPreflight],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("deepseek-r1-ascend:index:ClusterPreflight", name, None, opts)
        hccn = {node: host.hccn for node, host in hosts.items()}
        tls = pulumi.Output.all(**hccn).apply(
            lambda outputs: hostchecks.raise_if_failed(hostchecks.judge_tls_consistency(outputs)) and "consistent"
        )
        pings = []
        for node in plan.nodes:
            peers = {peer: out for peer, out in hccn.items() if peer != node.name}
            script = pulumi.Output.all(**peers).apply(
                lambda outputs, node=node: hostchecks.ping_command(_ping_targets(plan, node, outputs))
            )
            ping = node_command(
                f"{node.name}-check-npu-ping",
                node,
                script,
                ssh_private_key=plan.ssh_private_key,
                triggers=[plan.group_fingerprint],
                opts=pulumi.ResourceOptions(parent=self),
            )
            pings.append(
                ping.stdout.apply(
                    lambda out, node=node: hostchecks.raise_if_failed([hostchecks.judge_ping(node.name, out)]) and "ok"
                )
            )
        self.passed = pulumi.Output.all(tls, *pings).apply(lambda _: "passed")
        self.register_outputs({"passed": self.passed})


def _ping_targets(plan: ClusterPlan, node: NodePlan, peer_outputs: dict[str, str]) -> list[hostchecks.PingTarget]:
    peer_ips = {}
    for peer, output in peer_outputs.items():
        parsed = hostchecks.parse_hccn(output) or {}
        peer_ips[peer] = {npu: net.ipaddr for npu, net in parsed.items() if net.ipaddr}
    return hostchecks.ping_targets(node.npus, peer_ips, same_index_only=plan.preflight.ping_pairs == "same-index")
