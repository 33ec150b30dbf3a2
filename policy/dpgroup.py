"""The data-parallel group: the vllm containers of a stack form one group, and every node of it
must agree with the head on what they share, and run one image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pulumi_policy import EnforcementLevel, ReportViolation, StackValidationArgs, StackValidationPolicy

from core.flags import names_credential
from core.plan import GROUP_LABEL
from core.vllm_args import load_table
from props import REMOTE_IMAGE, Argv, ContainerView, in_rank_order, is_unknown, plain, stack_views

FIX_RANKS = "set start ranks to node index x data-parallel-size-local (0, 2, ...)"
# Reports a message about the container with that URN.
Report = Callable[[str, str], None]


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
}


def _model_flags(argv: Argv) -> list[tuple[str, str | None]]:
    # A credential (--api-key, --hf-token, in any spelling) is no model setting, and its value must
    # not reach a message: vllm-no-secrets-on-command-line reports it.
    table = load_table()
    return [("<model>", argv.model)] + [
        (f, v) for f, v in argv.pairs if f not in _PER_NODE_FLAGS and not names_credential(f, table)
    ]


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


def check_same_model_flags(group: DpGroup, report: Report) -> None:
    """Every node serves the model with the head's flags."""
    head = group.head
    for v in group.nodes:
        if v is head:
            continue
        differences = _flag_differences(v.argv, head.argv)
        if differences:
            report(
                f"node {v.node}: model flags differ from head {head.node}: {'; '.join(differences)}; "
                "every node must serve the same model configuration (set it once under serve.*)",
                v.urn,
            )


def dp_groups(views: list[ContainerView]) -> list[list[ContainerView]]:
    """The stack's data-parallel groups: one, or one per group label when several sit behind the
    router (the label names the group; a container without one is in the stack's one group)."""
    groups: dict[object, list[ContainerView]] = {}
    for v in views:
        groups.setdefault(v.labels.get(GROUP_LABEL), []).append(v)
    return list(groups.values())


def validate_dp_group(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for views in dp_groups([v for v in stack_views(args) if v.may_serve]):
        known = in_rank_order(views)
        if not known:
            continue
        head = check_one_head(known, len(known) == len(views), report_violation)
        if head is None:
            continue
        group = DpGroup(known, head, len(views))
        check_shared_flags(group, report_violation)
        check_head_address(group, report_violation)
        check_ranks(group, report_violation)
        check_same_model_flags(group, report_violation)


DP_GROUP = StackValidationPolicy(
    name="vllm-dp-group-consistent",
    description="The nodes of each data-parallel group: one head, shared size, port, address and model flags, contiguous ranks.",
    validate=validate_dp_group,
    enforcement_level=EnforcementLevel.MANDATORY,
)


@dataclass(frozen=True)
class NodeImage:
    """What a node's container runs, as far as it is known (None where not yet)."""

    # The reference pulled: its RemoteImage's name, or a plain reference given to the container.
    ref: str | None
    # The id of the pulled image (`sha256:...`), which the container names as its image.
    id: str | None

    def differs(self, other: NodeImage) -> bool:
        # The id is the build itself: one id under two references (a mirror) is one build, and two
        # ids under one tag (re-pushed between two nodes' pulls) are two. An image pulled only at
        # `pulumi up` has no id at preview; then two references are the only evidence.
        if self.id and other.id:
            return self.id != other.id
        return bool(self.ref and other.ref) and self.ref != other.ref

    def __str__(self) -> str:
        # The short id `docker images` lists on the node.
        short = f"id {self.id.removeprefix('sha256:')[:12]}" if self.id else ""
        return f"{self.ref} ({short})" if self.ref and short else self.ref or short


def _known(value: object) -> str | None:
    return value if isinstance(value, str) and value and not is_unknown(value) else None


def _node_image(view: ContainerView, images: list) -> NodeImage:
    """What a container runs: the plain reference it names, or the image id it names with the
    reference of its RemoteImage (the one it depends on, else the only one beside it in its
    component, else the one named after its node)."""
    given = _known(view.props.get("image"))
    if given and not given.startswith("sha256:"):
        return NodeImage(given, None)
    match = next((i for i in images if i.urn in view.dependency_urns), None)
    if match is None and view.parent_urn:
        same = [i for i in images if _parent_urn(i) == view.parent_urn]
        match = same[0] if len(same) == 1 else None
    if match is None:
        match = next((i for i in images if i.name == f"{view.node}-image"), None)
    props = plain(match.props) if match is not None else None
    return NodeImage(_known(props.get("name")) if isinstance(props, dict) else None, given)


def _parent_urn(resource) -> str | None:
    return getattr(getattr(resource, "parent", None), "urn", None) or getattr(
        getattr(resource, "opts", None), "parent", None
    )


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def validate_one_image(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = [r for r in args.resources if r.resource_type == REMOTE_IMAGE]
    for group in dp_groups(stack_views(args)):
        _one_image(in_rank_order(group), resources, report_violation)


def _one_image(nodes: list[ContainerView], resources: list, report_violation: ReportViolation) -> None:
    images = {v.node: _node_image(v, resources) for v in nodes}
    differing = [v for v in nodes if any(images[v.node].differs(images[w.node]) for w in nodes)]
    if not differing:
        return
    runs: dict[str, list[str]] = {}
    for v in differing:
        runs.setdefault(str(images[v.node]), []).append(v.node)
    # On the first node that differs from the lowest-ranked one, the group's reference as for the
    # other group checks (the head, when its command is known).
    first = next(v for v in differing[1:] if images[v.node].differs(images[differing[0].node]))
    report_violation(
        f"nodes {_listed([v.node for v in differing])} of one data-parallel group run different images "
        f"({', '.join(f'{image} on {_listed(names)}' for image, names in runs.items())}): different vllm "
        "builds hang the group at its start-up handshake; pin image.ref in the stack config to one "
        "@sha256: digest, so that every node pulls the same build",
        first.urn,
    )


ONE_IMAGE = StackValidationPolicy(
    name="vllm-dp-group-one-image",
    description="Every node of the data-parallel group runs the same image (one vllm build).",
    validate=validate_one_image,
    enforcement_level=EnforcementLevel.MANDATORY,
)
