"""The data-parallel group: the vllm containers of a stack form one group, and every node of it
must agree with the head on what they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, StackValidationArgs, StackValidationPolicy

from props import REMOTE_IMAGE, UNKNOWN, Argv, ContainerView, in_rank_order, is_unknown, plain, stack_views

FIX_RANKS = "set start ranks to node index x data-parallel-size-local (0, 2, ...)"
# Reports a message about the container with that URN.
Report = Callable[[str, str], None]


def _image_refs(args: StackValidationArgs, views: list[ContainerView]) -> dict[str, Any]:
    """Each vllm node's image reference, found through its RemoteImage."""
    images = [r for r in args.resources if r.resource_type == REMOTE_IMAGE]
    refs: dict[str, Any] = {}
    for view in views:
        match = next((i for i in images if i.urn in view.dependency_urns), None)
        if match is None and view.parent_urn:
            same = [
                i
                for i in images
                if (
                    getattr(getattr(i, "parent", None), "urn", None)
                    or getattr(getattr(i, "opts", None), "parent", None)
                )
                == view.parent_urn
            ]
            match = same[0] if len(same) == 1 else None
        if match is None:
            match = next((i for i in images if i.name == f"{view.node}-image"), None)
        if match is not None:
            props = plain(match.props)
            refs[view.node] = props.get("name") if isinstance(props, dict) else UNKNOWN
    return refs


def _ranks(start: int, local: int) -> str:
    return f"{start}-{start + local - 1}" if local > 1 else str(start)


# Flags that legitimately differ per node, or are checked on their own.
_PER_NODE_FLAGS = {
    "--headless",
    "--data-parallel-start-rank",
    "--data-parallel-size-local",
    "--data-parallel-size",
    "--data-parallel-address",
    "--data-parallel-rpc-port",
    "--host",
    "--port",
    "--api-key",
}


def _model_flags(argv: Argv) -> list[tuple[str, str | None]]:
    return [("<model>", argv.model)] + [(f, v) for f, v in argv.pairs if f not in _PER_NODE_FLAGS]


def _flag_differences(node: Argv, head: Argv) -> list[str]:
    mine, theirs = _model_flags(node), _model_flags(head)
    out = []
    mine_d, theirs_d = dict(mine), dict(theirs)
    for flag, value in theirs:
        if flag not in mine_d:
            out.append(f"{flag} missing (head: {value if value is not None else 'set'})")
        elif mine_d[flag] != value:
            out.append(f"{flag} {mine_d[flag]} (head: {value})")
    for flag, value in mine:
        if flag not in theirs_d:
            out.append(f"{flag}{'' if value is None else ' ' + value} (head: not set)")
    return out


@dataclass
class DpGroup:
    """The group as the checks see it: its known vllm nodes in rank order, and its head."""

    nodes: list[ContainerView]
    head: ContainerView
    # Containers in the group, including those whose command is not known yet.
    size: int

    @property
    def complete(self) -> bool:
        return len(self.nodes) == self.size


def check_one_head(nodes: list[ContainerView], complete: bool, report: Report) -> ContainerView | None:
    """The group's one head (no --headless); None, after reporting why, when there is none."""
    heads = [v for v in nodes if not v.headless]
    if complete and not heads:
        report(
            f"node {nodes[0].node}: every node runs --headless, so no node serves the API or "
            f"coordinates the group; remove --headless from the first node ({nodes[0].node})",
            nodes[0].urn,
        )
    for extra in heads[1:]:
        report(
            f"node {extra.node}: is a second head (no --headless) beside {heads[0].node}; one DP "
            f"group has exactly one head: add --headless to {extra.node}",
            extra.urn,
        )
    # Without a known head there is nothing to compare with (its command may be unknown).
    return heads[0] if heads else None


def check_shared_flags(group: DpGroup, report: Report) -> None:
    """Same data-parallel size everywhere, and in a multi-node group the same RPC port and address."""
    head, multi = group.head, group.size > 1
    for flag in ("--data-parallel-size", "--data-parallel-rpc-port", "--data-parallel-address"):
        if flag != "--data-parallel-size" and not multi:
            continue
        want = head.argv.get(flag)
        if want is None and multi:
            report(
                f"node {head.node}: the head of a {group.size}-node group has no {flag}; "
                "every node needs the same value",
                head.urn,
            )
        for v in group.nodes:
            got = v.argv.get(flag)
            if v is not head and got != want:
                shown = f"{flag} {got}" if got is not None else f"no {flag}"
                report(
                    f"node {v.node}: {shown}, but head {head.node} has "
                    f"{want if want is not None else 'none'}; every node of a DP group needs the same value",
                    v.urn,
                )


def check_head_address(group: DpGroup, report: Report) -> None:
    """The data-parallel address is the head's own (its HCCL_IF_IP)."""
    head = group.head
    address, head_ip = head.argv.get("--data-parallel-address"), head.env("HCCL_IF_IP")
    if group.size < 2 or not (isinstance(address, str) and isinstance(head_ip, str) and head_ip):
        return
    if address == head_ip:
        return
    for v in group.nodes:
        if v.argv.get("--data-parallel-address") == address:
            report(
                f"node {v.node}: --data-parallel-address {address} is not the address of head "
                f"{head.node} ({head_ip}, its HCCL_IF_IP); the ranks would wait for a head that "
                f"is not there: set it to {head_ip} (nodes[0].ip)",
                v.urn,
            )


def _spans(group: DpGroup, report: Report) -> list[tuple[int, int, ContainerView]] | None:
    """(start rank, local ranks, node) of every node in rank order; None, after reporting, when a
    node's ranks are not positive numbers."""
    spans = []
    for v in group.nodes:
        start, local = v.start_rank, v.dp_local
        if start is None or local is None or start < 0 or local < 1:
            report(
                f"node {v.node}: --data-parallel-start-rank or --data-parallel-size-local is not a "
                f"positive number; {FIX_RANKS}",
                v.urn,
            )
            return None
        spans.append((start, local, v))
    return sorted(spans, key=lambda s: (s[0], s[2] is not group.head))


def check_ranks(group: DpGroup, report: Report) -> None:
    """Ranks are contiguous, do not overlap and cover 0..dp-1."""
    size = group.head.dp_size
    spans = _spans(group, report) if group.complete and size is not None else None
    if not spans:
        return
    expected, previous = 0, None
    for start, local, v in spans:
        if start < expected and previous is not None:
            p_start, p_local, p = previous
            report(
                f"node {v.node}: --data-parallel-start-rank {start} overlaps ranks "
                f"{_ranks(p_start, p_local)} of node {p.node}; {FIX_RANKS}",
                v.urn,
            )
        elif start > expected:
            after = f"after node {previous[2].node}'s ranks {_ranks(*previous[:2])}" if previous else "before it"
            report(
                f"node {v.node}: --data-parallel-start-rank {start} leaves ranks "
                f"{_ranks(expected, start - expected)} unassigned ({after}), and the group waits for "
                f"them forever; {FIX_RANKS}",
                v.urn,
            )
        if start + local > size:
            report(
                f"node {v.node}: ranks {_ranks(start, local)} exceed --data-parallel-size {size} "
                f"(ranks 0-{size - 1}); make data-parallel-size-local x nodes equal "
                f"--data-parallel-size and {FIX_RANKS}",
                v.urn,
            )
        expected = max(expected, start + local)
        previous = (start, local, v)
    if expected < size:
        last = previous[2]
        report(
            f"node {last.node}: ranks {_ranks(expected, size - expected)} of --data-parallel-size "
            f"{size} are held by no node (the last, {last.node}, ends at rank {expected - 1}), and the "
            "group waits for them forever; make data-parallel-size-local x nodes equal "
            "--data-parallel-size",
            last.urn,
        )


def check_same_build(group: DpGroup, refs: dict[str, Any], report: Report) -> None:
    """Every node runs the head's image and model flags."""
    head = group.head
    head_ref = refs.get(head.node)
    for v in group.nodes:
        if v is head:
            continue
        ref = refs.get(v.node)
        if isinstance(ref, str) and isinstance(head_ref, str) and not is_unknown(ref) and not is_unknown(head_ref):
            if ref != head_ref:
                report(
                    f"node {v.node}: image '{ref}' differs from '{head_ref}' on head {head.node}; every "
                    "node of a DP group must run the same build: set image once in the stack config",
                    v.urn,
                )
        differences = _flag_differences(v.argv, head.argv)
        if differences:
            report(
                f"node {v.node}: model flags differ from head {head.node}: {'; '.join(differences)}; "
                "every node must serve the same model configuration (set it once under serve.*)",
                v.urn,
            )


def validate_dp_group(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    views = [v for v in stack_views(args) if v.may_serve]
    known = in_rank_order(views)
    if not known:
        return
    head = check_one_head(known, len(known) == len(views), report_violation)
    if head is None:
        return
    group = DpGroup(known, head, len(views))
    check_shared_flags(group, report_violation)
    check_head_address(group, report_violation)
    check_ranks(group, report_violation)
    check_same_build(group, _image_refs(args, known), report_violation)


DP_GROUP = StackValidationPolicy(
    name="vllm-dp-group-consistent",
    description="All nodes form one data-parallel group: one head, shared size, port, address, image and model flags, contiguous ranks.",
    validate=validate_dp_group,
    enforcement_level=EnforcementLevel.MANDATORY,
)
