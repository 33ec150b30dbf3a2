"""Per-node network settings across a data-parallel group: each node's HCCL address is its own
and the one it is reached at, and its interface variables name one NIC."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from pulumi_policy import EnforcementLevel, ReportViolation, StackValidationArgs, StackValidationPolicy

from core.config import NETWORK_ENV
from core.plan import NIC_ENV
from props import ContainerView, in_rank_order, is_unknown, stack_views

ADDRESS_ENV = NETWORK_ENV[0]
_DOCKER_HOST = "its Docker host"
_OR_DOCKER_HOST = ", or point its dockerHost at the machine that has that address"
# Reports a message about the container with that URN.
Report = Callable[[str, str], None]


def _fix_ip(view: ContainerView, address: str | None = None) -> str:
    where = f"nodes[].ip of {view.node} in the stack config"
    return f"set it to {address} ({where})" if address else f"set it to the node's own address ({where})"


def _ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]")) if value else None
    except ValueError:
        return None


def _reached_at(view: ContainerView) -> tuple[str, str] | None:
    """The address the node is reached at, and where that comes from: its Docker host when that
    names an IP address, else, for the head, the group's --data-parallel-address."""
    if _ip(view.docker_address):
        return view.docker_address, _DOCKER_HOST
    address = view.argv.get("--data-parallel-address") if view.argv and not view.headless else None
    return (address, "the group's --data-parallel-address") if _ip(address) else None


def check_interfaces(view: ContainerView, report: Report) -> None:
    """The interface variables name one NIC."""
    values = {name: view.env(name) for name in NIC_ENV}
    if any(is_unknown(v) for v in values.values()) or len(set(values.values())) < 2:
        return
    shown = ", ".join(f"{name} {value or '(not set)'}" for name, value in values.items())
    report(
        f"node {view.node}: the interface variables disagree ({shown}), so gloo, the tensor-parallel "
        "sockets and HCCL use different NICs and the group hangs or crawls; set all three to the NIC "
        f"that holds {ADDRESS_ENV} (nodes[].nic of {view.node} in the stack config sets them)",
        view.urn,
    )


def check_own_address(view: ContainerView, multi_node: bool, report: Report) -> bool:
    """HCCL_IF_IP is set (in a multi-node group), an IP address, and the one the node is reached
    at; False when it is not."""
    ip = view.env(ADDRESS_ENV)
    if not ip:
        if multi_node:
            report(
                f"node {view.node}: {ADDRESS_ENV} is not set, so HCCL picks an interface itself, which need "
                f"not be the one the other nodes reach; {_fix_ip(view)}",
                view.urn,
            )
        return not multi_node
    if not _ip(ip):
        report(f"node {view.node}: {ADDRESS_ENV} {ip} is not an IP address; {_fix_ip(view)}", view.urn)
        return False
    reached = _reached_at(view)
    if reached and _ip(ip) != _ip(reached[0]):
        address, source = reached
        report(
            f"node {view.node}: {ADDRESS_ENV} {ip} is not {address}, the address the node is reached at "
            f"({source}); HCCL would bind an address that is not this node's and the group hangs at "
            f"start-up: {_fix_ip(view, address)}{_OR_DOCKER_HOST if source == _DOCKER_HOST else ''}",
            view.urn,
        )
        return False
    return True


def check_distinct_addresses(nodes: list[ContainerView], wrong: set[str], report: Report) -> None:
    """No two nodes claim one HCCL_IF_IP. Of the claimants, the node reached at that address owns
    it (or the first in rank order, when none is known to be); the others are reported, unless
    their address was already reported as not theirs."""
    claims: dict[object, list[ContainerView]] = {}
    for v in nodes:
        ip = _ip(v.env(ADDRESS_ENV))
        if ip is not None:
            claims.setdefault(ip, []).append(v)
    for ip, claimants in claims.items():
        if len(claimants) < 2:
            continue
        owners = [v for v in claimants if (r := _reached_at(v)) and _ip(r[0]) == ip] or claimants[:1]
        for v in claimants:
            if v not in owners and v.node not in wrong:
                report(
                    f"node {v.node}: {ADDRESS_ENV} {v.env(ADDRESS_ENV)} is also node {owners[0].node}'s; two "
                    f"ranks claiming one address hang HCCL at start-up: {_fix_ip(v)}",
                    v.urn,
                )


def validate_node_network(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    views = [v for v in stack_views(args) if v.may_serve]
    # Serving containers whose vllm command is hidden behind a wrapper have no rank: they come last.
    ordered = in_rank_order(views) + [v for v in views if v.is_serving and not v.is_vllm]
    nodes = [v for v in ordered if isinstance(v.envs, dict)]
    wrong = set()
    for v in nodes:
        check_interfaces(v, report_violation)
        if not check_own_address(v, len(views) > 1, report_violation):
            wrong.add(v.node)
    check_distinct_addresses(nodes, wrong, report_violation)


NODE_NETWORK = StackValidationPolicy(
    name="vllm-node-network-env",
    description=f"Each node's {ADDRESS_ENV} is its own (distinct, the address it is reached at), and its interface variables agree.",
    validate=validate_node_network,
    enforcement_level=EnforcementLevel.MANDATORY,
)
