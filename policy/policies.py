"""The guardrails of deepseek-r1-ascend, as CrossGuard policies.

Everything here is importable without starting a policy server (`__main__.py` builds the pack),
so the tests run each policy on the mocked resource graph of every shipped stack.

Props arrive in Pulumi wire names (`networkMode`, `shmSize`, ...). At preview some values are
unknown: pulumi-policy wraps props in a proxy that raises `UnknownValueError` on access. Every
policy first copies the props into plain Python with `plain()`, which turns unknown values into
the `UNKNOWN` marker, and skips a check whose inputs are not known yet, so a preview never fails
for a value the engine cannot know.

The facts it shares with the program (driver paths, management devices, what a pinned image
is, the label prefix) are imported from `core/`, so the pack's virtualenv installs the
program's pydantic too (policy/requirements.txt).
"""

from __future__ import annotations

import posixpath
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The pack lives inside the project: it reads the program's facts (driver paths, devices, what a
# pinned image is) instead of keeping copies that could drift.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from core.config import image_reference_problem  # noqa: E402
from core.plan import DRIVER_PATHS, LABEL_PREFIX, MANAGEMENT_DEVICES  # noqa: E402

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
REMOTE_COMMANDS = ("command:remote:Command", "command:remote:CopyToRemote", "command:remote:CopyFile")

# Anything below these is driver or firmware too, whatever the exact path.
DRIVER_TREES = ("/usr/local/Ascend/driver", "/usr/local/Ascend/firmware", "/usr/local/dcmi")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")
_DAVINCI = re.compile(r"^/dev/davinci(\d+)$")

DEFAULT_MIN_SHM_MIB = 1024
DEFAULT_MAX_GPU_MEMORY_UTILIZATION = 0.95
# vllm's own defaults for flags a command leaves out.
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9

FIX_RANKS = "set start ranks to node index x data-parallel-size-local (0, 2, ...)"


# --- unknown-tolerant access -------------------------------------------------------------------


class _Unknown:
    """A value the engine cannot know during preview."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()
_SENTINELS = {
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_STRING_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_OBJECT_VALUE,
}


_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN or (isinstance(value, str) and value in _SENTINELS)


def plain(value: Any) -> Any:
    """A plain copy of props (dicts, lists, scalars), with every unknown value as UNKNOWN.

    Accepts pulumi-policy's unknown-checking proxies, secrets and raw sentinel strings alike.
    """
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG and "value" in value:
        return plain(value["value"])  # a secret still in its wire form
    if is_unknown(value):
        return UNKNOWN
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if hasattr(value, "keys"):
        out = {}
        for key in list(value.keys()):
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN
        return out
    if hasattr(value, "__len__") and hasattr(value, "__getitem__"):
        items = []
        for i in range(len(value)):
            try:
                items.append(plain(value[i]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def _list(value: Any) -> list | None:
    """The list, [] when absent, None when unknown or not a list (the check is then skipped)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return None


# --- reading a vllm serve command --------------------------------------------------------------


@dataclass
class Argv:
    """`vllm serve MODEL --flag value --switch ...` as ordered (flag, value) pairs."""

    model: str | None
    pairs: list[tuple[str, str | None]] = field(default_factory=list)

    @classmethod
    def parse(cls, command: list) -> Argv:
        tokens = [t if isinstance(t, str) else "" for t in command]
        rest = tokens[2:] if tokens[:2] == ["vllm", "serve"] else tokens
        model = None
        pairs: list[tuple[str, str | None]] = []
        i = 0
        while i < len(rest):
            token = rest[i]
            if token.startswith("--"):
                if "=" in token:
                    flag, value = token.split("=", 1)
                    pairs.append((flag, value))
                elif i + 1 < len(rest) and not rest[i + 1].startswith("--"):
                    pairs.append((token, rest[i + 1]))
                    i += 1
                else:
                    pairs.append((token, None))
            elif model is None and not pairs:
                model = token
            else:
                pairs.append(("", token))
            i += 1
        for flag, value in pairs:
            if flag == "--model" and model is None:
                model = value
        return cls(model, pairs)

    def has(self, flag: str) -> bool:
        return any(f == flag for f, _ in self.pairs)

    def get(self, flag: str) -> str | None:
        for f, value in self.pairs:
            if f == flag:
                return value
        return None

    def get_int(self, flag: str, default: int | None = None) -> int | None:
        value = self.get(flag)
        if value is None:
            return default if not self.has(flag) else None
        try:
            return int(value)
        except ValueError:
            return None


def is_vllm_serve(command: Any) -> bool:
    if not isinstance(command, list) or len(command) < 2:
        return False
    first, second = command[0], command[1]
    return isinstance(first, str) and posixpath.basename(first) == "vllm" and second == "serve"


@dataclass
class ContainerView:
    """What the policies read from one docker.Container's props."""

    urn: str
    name: str
    node: str
    props: dict
    command: Any  # list, or UNKNOWN
    argv: Argv | None
    envs: Any  # dict, or UNKNOWN
    parent_urn: str | None = None
    dependency_urns: tuple[str, ...] = ()

    @property
    def is_vllm(self) -> bool:
        return self.argv is not None

    @property
    def headless(self) -> bool:
        return bool(self.argv and self.argv.has("--headless"))

    @property
    def dp_size(self) -> int | None:
        return self.argv.get_int("--data-parallel-size", 1) if self.argv else None

    @property
    def dp_local(self) -> int | None:
        if not self.argv:
            return None
        if self.argv.has("--data-parallel-size-local"):
            return self.argv.get_int("--data-parallel-size-local")
        return self.dp_size

    @property
    def start_rank(self) -> int | None:
        return self.argv.get_int("--data-parallel-start-rank", 0) if self.argv else None

    @property
    def multi_node(self) -> bool:
        """Part of a DP group that spans nodes (some of its ranks live elsewhere)."""
        if not self.argv:
            return False
        if self.headless or self.argv.has("--data-parallel-address"):
            return True
        local, size = self.dp_local, self.dp_size
        return local is not None and size is not None and local < size

    def env(self, key: str) -> Any:
        if not isinstance(self.envs, dict):
            return UNKNOWN
        return self.envs.get(key)


def _labels(value: Any) -> dict:
    labels = {}
    for item in _list(value) or []:
        if isinstance(item, dict) and isinstance(item.get("label"), str):
            labels[item["label"]] = item.get("value")
    return labels


def _envs(value: Any) -> Any:
    items = _list(value)
    if items is None:
        return UNKNOWN
    env = {}
    for item in items:
        if not isinstance(item, str) or is_unknown(item):
            return UNKNOWN
        key, _, val = item.partition("=")
        env[key] = val
    return env


def node_name(resource_name: str, labels: dict, suffix: str) -> str:
    label = labels.get(LABEL_PREFIX + "node")
    if isinstance(label, str) and label and not is_unknown(label):
        return label
    return resource_name[: -len(suffix)] if suffix and resource_name.endswith(suffix) else resource_name


def container_view(
    urn: str,
    name: str,
    props: Any,
    parent_urn: str | None = None,
    dependency_urns: Iterable[str] = (),
) -> ContainerView:
    props = plain(props)
    if not isinstance(props, dict):
        props = {}
    command = props.get("command")
    command = UNKNOWN if is_unknown(command) or (command is not None and not isinstance(command, list)) else command
    if isinstance(command, list) and any(is_unknown(t) for t in command):
        command = UNKNOWN
    argv = Argv.parse(command) if is_vllm_serve(command) else None
    return ContainerView(
        urn=urn,
        name=name,
        node=node_name(name, _labels(props.get("labels")), "-vllm"),
        props=props,
        command=command,
        argv=argv,
        envs=_envs(props.get("envs")),
        parent_urn=parent_urn,
        dependency_urns=tuple(dependency_urns),
    )


def _config(args: Any, key: str, default: Any) -> Any:
    try:
        value = (args.get_config() or {}).get(key, default)
    except Exception:  # a stand-in without config
        return default
    return default if value is None else value


# --- image references ---------------------------------------------------------------------------

# --- resource policies: containers ---------------------------------------------------------------


def _norm(path: Any) -> str | None:
    if not isinstance(path, str) or is_unknown(path) or not path.startswith("/"):
        return None
    return posixpath.normpath(path).replace("//", "/")


def _contains(outer: str, inner: str) -> bool:
    return outer == "/" or inner == outer or inner.startswith(outer + "/")


def _is_driver_path(path: str | None) -> bool:
    return path is not None and (path in DRIVER_PATHS or any(_contains(t, path) for t in DRIVER_TREES))


def _mounts(props: dict) -> list[tuple[str | None, str | None, Any]] | None:
    """(host path, container path, read-only) of every volume and bind mount; None if unknown."""
    volumes, mounts = _list(props.get("volumes")), _list(props.get("mounts"))
    if volumes is None or mounts is None:
        return None
    out = []
    for v in volumes:
        if isinstance(v, dict):
            out.append((_norm(v.get("hostPath")), _norm(v.get("containerPath")), v.get("readOnly")))
    for m in mounts:
        if isinstance(m, dict) and m.get("type") in (None, "bind") and not is_unknown(m.get("type")):
            out.append((_norm(m.get("source")), _norm(m.get("target")), m.get("readOnly")))
    return out


def check_host_isolation(view: ContainerView, report: Callable[[str], None]) -> None:
    node, props = view.node, view.props
    if props.get("privileged") is True:
        report(
            f"node {node}: the container runs privileged, which hands it every host device and "
            "capability; set container.privileged to false (the NPUs are passed as devices)"
        )
    mounts = _mounts(props)
    if mounts is None:
        return
    for host, target, read_only in mounts:
        if host is None:
            continue
        if host == "/":
            report(
                f"node {node}: the host root / is mounted at {target or '?'}, which exposes the whole "
                "host; mount only the paths the container needs"
            )
            continue
        socket = next((s for s in DOCKER_SOCKETS if _contains(host, s)), None)
        if socket:
            shown = host if host == socket else f"{host} (holding {socket})"
            report(
                f"node {node}: {shown} is mounted, which gives the container root on the host "
                "through the container engine; remove that volume"
            )
            continue
        if (_is_driver_path(target) or _is_driver_path(host)) and read_only is not True and not is_unknown(read_only):
            report(
                f"node {node}: driver mount {host} -> {target} is writable, so the container could "
                "change the host's NPU driver; mount it with readOnly: true"
            )


def check_shm(view: ContainerView, report: Callable[[str], None], min_mib: float) -> None:
    if not view.is_vllm:
        return
    shm = view.props.get("shmSize")
    if is_unknown(shm):
        return
    if shm is None:
        report(
            f"node {view.node}: shmSize is not set, so Docker gives 64 MiB of /dev/shm and vllm's "
            f"workers fail or hang; set container.shmSize to at least {min_mib:g} MiB (e.g. 1g)"
        )
    elif isinstance(shm, (int, float)) and not isinstance(shm, bool) and shm < min_mib:
        report(
            f"node {view.node}: shmSize is {shm:g} MiB, below {min_mib:g} MiB; vllm's workers need "
            f"more shared memory: set container.shmSize to at least {min_mib:g} MiB (e.g. 1g)"
        )


def check_host_network(view: ContainerView, report: Callable[[str], None]) -> None:
    if not view.multi_node:
        return
    mode = view.props.get("networkMode")
    if is_unknown(mode) or mode == "host":
        return
    shown = f"'{mode}'" if isinstance(mode, str) else "Docker's default bridge"
    report(
        f"node {view.node}: runs data-parallel ranks of a multi-node group on {shown} networking, "
        "so the other nodes cannot reach its HCCL and RPC ports; set networkMode to 'host'"
    )


def check_npu_devices(view: ContainerView, report: Callable[[str], None]) -> None:
    if not view.argv:
        return
    devices = _list(view.props.get("devices"))
    if devices is None:
        return
    paths = []
    for d in devices:
        if is_unknown(d):
            return
        if not isinstance(d, dict):
            continue
        path = d.get("containerPath") if d.get("containerPath") is not None else d.get("hostPath")
        if is_unknown(path):
            return
        if isinstance(path, str):
            paths.append(path)
    node = view.node
    npus = sorted({int(m.group(1)) for p in paths if (m := _DAVINCI.match(p))})
    tp = view.argv.get_int("--tensor-parallel-size", 1)
    local = view.dp_local
    local_flag = "--data-parallel-size-local" if view.argv.has("--data-parallel-size-local") else "--data-parallel-size"
    if tp is None or local is None:
        report(f"node {node}: --tensor-parallel-size or {local_flag} is not a number; give both as integers")
    elif tp * local != len(npus):
        shown = ", ".join(f"/dev/davinci{i}" for i in npus) if npus else "none"
        want = tp * local
        hint = "the missing ranks never start and the group hangs" if len(npus) < want else "the extra NPUs sit idle"
        report(
            f"node {node}: --tensor-parallel-size {tp} x {local_flag} {local} = {want} NPUs, "
            f"but {len(npus)} /dev/davinciN devices are mounted ({shown}); {hint}: mount "
            f"/dev/davinci0../dev/davinci{want - 1} or change the parallel sizes"
        )
    missing = [m for m in MANAGEMENT_DEVICES if m not in paths]
    if missing:
        report(
            f"node {node}: management device{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not mounted, so the NPU runtime cannot open the "
            "NPUs; add every one of " + ", ".join(MANAGEMENT_DEVICES) + " to devices"
        )


def check_serve_flags(view: ContainerView, report: Callable[[str], None], max_util: float) -> None:
    argv = view.argv
    if not argv:
        return
    node = view.node
    if argv.model and "w8a8" in argv.model.lower():
        quant = argv.get("--quantization")
        if quant != "ascend":
            got = f"--quantization {quant}" if argv.has("--quantization") else "no --quantization"
            report(
                f"node {node}: {argv.model} is a W8A8 checkpoint but the command has {got}; "
                "vllm-ascend loads it only with --quantization ascend (serve.quantization)"
            )
    if argv.has("--gpu-memory-utilization"):
        raw = argv.get("--gpu-memory-utilization")
        try:
            util = float(raw) if raw is not None else None
        except ValueError:
            util = None
        if util is None or not (0 < util <= max_util):
            report(
                f"node {node}: --gpu-memory-utilization {raw} is outside (0, {max_util:g}]; the NPU "
                "runtime and HCCL buffers need the rest: set serve.gpuMemoryUtilization to e.g. 0.92"
            )
    elif VLLM_DEFAULT_GPU_MEMORY_UTILIZATION > max_util:
        report(
            f"node {node}: no --gpu-memory-utilization, so vllm uses its default "
            f"{VLLM_DEFAULT_GPU_MEMORY_UTILIZATION:g}, above {max_util:g}; set serve.gpuMemoryUtilization"
        )


def _resource_view(args: ResourceValidationArgs) -> ContainerView:
    return container_view(args.urn, args.name, args.props)


def _on_container(check: Callable[..., None], *config: tuple[str, Any]):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != CONTAINER:
            return
        view = _resource_view(args)
        values = []
        for key, default in config:
            try:
                values.append(float(_config(args, key, default)))
            except (TypeError, ValueError):
                values.append(float(default))
        check(view, lambda message: report_violation(message, None), *values)

    return validate


def validate_image_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = plain(args.props)
    if not isinstance(props, dict):
        return
    if args.resource_type == REMOTE_IMAGE:
        ref, node = props.get("name"), node_name(args.name, {}, "-image")
    elif args.resource_type == CONTAINER:
        ref, node = props.get("image"), container_view(args.urn, args.name, props).node
        # Normally the RemoteImage's id; a plain reference here bypasses the RemoteImage.
        if isinstance(ref, str) and ref.startswith("sha256:"):
            return
    else:
        return
    if not isinstance(ref, str) or is_unknown(ref):
        return
    problem = image_reference_problem(ref)
    if problem:
        report_violation(f"node {node}: image {problem}; set image.tag or image.ref in the stack config", None)


def validate_host_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in REMOTE_COMMANDS:
        return
    props = plain(args.props)
    connection = props.get("connection") if isinstance(props, dict) else None
    if not isinstance(connection, dict):
        return
    hops = [("connection", connection)]
    if isinstance(connection.get("proxy"), dict):
        hops.append(("connection.proxy", connection["proxy"]))
    for where, conn in hops:
        host_key = conn.get("hostKey")
        if is_unknown(host_key) or is_unknown(conn.get("host")):
            continue
        if not (isinstance(host_key, str) and host_key.strip()):
            host = conn.get("host") if isinstance(conn.get("host"), str) else "?"
            report_violation(
                f"node {host} ({args.name}): {where}.hostKey is not set, so the command trusts any "
                f"machine answering at {host}; pin it with {where}.hostKey (the output of "
                f"`ssh-keyscan -t ed25519 {host}`, without the host name)",
                None,
            )


# --- stack policies ------------------------------------------------------------------------------


def _stack_views(args: StackValidationArgs) -> list[ContainerView]:
    views = []
    for r in args.resources:
        if r.resource_type != CONTAINER:
            continue
        parent = getattr(r, "parent", None)
        parent_urn = getattr(parent, "urn", None) or getattr(getattr(r, "opts", None), "parent", None)
        deps = [getattr(d, "urn", d) for d in (getattr(r, "dependencies", None) or [])]
        views.append(container_view(r.urn, r.name, r.props, parent_urn, deps))
    return views


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


def validate_dp_group(args: StackValidationArgs, report_violation: ReportViolation) -> None:  # noqa: C901 (to be split into its named checks)
    views = [v for v in _stack_views(args) if v.is_vllm or is_unknown(v.command)]
    if not views:
        return
    report = report_violation
    # The engine's resource order is not the nodes' order: rank 0's node comes first.
    known = sorted(
        (v for v in views if v.is_vllm),
        key=lambda v: (v.start_rank if v.start_rank is not None else 1 << 30, v.node),
    )
    complete = len(known) == len(views)

    heads = [v for v in known if not v.headless]
    if complete and not heads:
        report(
            f"node {known[0].node}: every node runs --headless, so no node serves the API or "
            f"coordinates the group; remove --headless from the first node ({known[0].node})",
            known[0].urn,
        )
    for extra in heads[1:]:
        report(
            f"node {extra.node}: is a second head (no --headless) beside {heads[0].node}; one DP "
            f"group has exactly one head: add --headless to {extra.node}",
            extra.urn,
        )
    if not heads:
        # Without a known head there is nothing to compare with (its command may be unknown).
        return
    head = heads[0]
    multi = len(views) > 1

    # Same data-parallel size, RPC port and address everywhere; the address is the head's IP.
    for flag in ("--data-parallel-size", "--data-parallel-rpc-port", "--data-parallel-address"):
        if flag != "--data-parallel-size" and not multi:
            continue
        want = head.argv.get(flag)
        for v in known:
            got = v.argv.get(flag)
            if v is head:
                if got is None and multi:
                    report(
                        f"node {v.node}: the head of a {len(views)}-node group has no {flag}; "
                        "every node needs the same value",
                        v.urn,
                    )
                continue
            if got != want:
                shown = f"{flag} {got}" if got is not None else f"no {flag}"
                report(
                    f"node {v.node}: {shown}, but head {head.node} has "
                    f"{want if want is not None else 'none'}; every node of a DP group needs the same value",
                    v.urn,
                )
    if multi:
        address = head.argv.get("--data-parallel-address")
        head_ip = head.env("HCCL_IF_IP")
        if isinstance(address, str) and isinstance(head_ip, str) and head_ip and address != head_ip:
            for v in known:
                if v.argv.get("--data-parallel-address") == address:
                    report(
                        f"node {v.node}: --data-parallel-address {address} is not the address of head "
                        f"{head.node} ({head_ip}, its HCCL_IF_IP); the ranks would wait for a head that "
                        f"is not there: set it to {head_ip} (nodes[0].ip)",
                        v.urn,
                    )

    # Ranks: contiguous, non-overlapping, covering 0..dp-1.
    size = head.dp_size
    if complete and size is not None:
        spans = []
        for v in known:
            start, local = v.start_rank, v.dp_local
            if start is None or local is None or start < 0 or local < 1:
                report(
                    f"node {v.node}: --data-parallel-start-rank or --data-parallel-size-local is not a "
                    f"positive number; {FIX_RANKS}",
                    v.urn,
                )
                return
            spans.append((start, local, v))
        spans.sort(key=lambda s: (s[0], s[2] is not head))
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
                after = (
                    f"after node {previous[2].node}'s ranks {_ranks(previous[0], previous[1])}"
                    if previous
                    else "before it"
                )
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
        if expected < size and previous is not None:
            last = previous[2]
            report(
                f"node {last.node}: ranks {_ranks(expected, size - expected)} of --data-parallel-size "
                f"{size} are held by no node (the last, {last.node}, ends at rank {expected - 1}), and the "
                "group waits for them forever; make data-parallel-size-local x nodes equal "
                "--data-parallel-size",
                last.urn,
            )

    # Same image and model flags everywhere.
    refs = _image_refs(args, known)
    head_ref = refs.get(head.node)
    for v in known:
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


_ALL_INTERFACES = {"0.0.0.0", "::", "[::]", ""}


def validate_open_api(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for v in _stack_views(args):
        if not v.is_vllm or v.headless:
            continue
        host = v.argv.get("--host")
        if host is not None and host not in _ALL_INTERFACES:
            continue
        if v.argv.has("--api-key"):
            continue
        key = v.env("VLLM_API_KEY")
        if is_unknown(key) or (isinstance(key, str) and key):
            continue
        port = v.argv.get("--port") or "8000"
        report_violation(
            f"node {v.node}: the OpenAI API listens on {host or '0.0.0.0'}:{port} without --api-key or "
            "VLLM_API_KEY, so anyone who reaches the node can use it; set a key with "
            "`pulumi config set --secret apiKey <key>` or listen on a private address (serve.host)",
            v.urn,
        )


# --- the pack ------------------------------------------------------------------------------------


def _number(description: str, default: float, **bounds: float) -> dict:
    return {"type": "number", "default": default, "description": description, **bounds}


POLICIES = [
    ResourceValidationPolicy(
        name="vllm-container-host-isolation",
        description="Containers are not privileged, mount neither the Docker socket nor /, and mount the NPU driver read-only.",
        validate=_on_container(check_host_isolation),
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="vllm-image-pinned",
        description="Images are pinned to a version tag or a sha256 digest, never untagged or 'latest'.",
        validate=validate_image_pinned,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="vllm-shm-size",
        description="vllm containers get enough shared memory (/dev/shm) for their workers.",
        validate=_on_container(check_shm, ("minShmMiB", DEFAULT_MIN_SHM_MIB)),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={"minShmMiB": _number("Smallest shmSize in MiB.", DEFAULT_MIN_SHM_MIB, minimum=64)}
        ),
    ),
    ResourceValidationPolicy(
        name="vllm-host-network",
        description="Ranks of a multi-node data-parallel group use host networking.",
        validate=_on_container(check_host_network),
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="vllm-npu-devices-match-parallelism",
        description="Each node mounts one /dev/davinciN per local rank x tensor-parallel size, plus the three management devices.",
        validate=_on_container(check_npu_devices),
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="vllm-w8a8-serve-flags",
        description="W8A8 models are served with --quantization ascend and a --gpu-memory-utilization in (0, 0.95].",
        validate=_on_container(check_serve_flags, ("maxGpuMemoryUtilization", DEFAULT_MAX_GPU_MEMORY_UTILIZATION)),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={
                "maxGpuMemoryUtilization": _number(
                    "Largest --gpu-memory-utilization allowed.",
                    DEFAULT_MAX_GPU_MEMORY_UTILIZATION,
                    exclusiveMinimum=0,
                    maximum=1,
                )
            }
        ),
    ),
    ResourceValidationPolicy(
        name="remote-command-host-key-pinned",
        description="Remote commands pin the SSH host key of the machine they connect to.",
        validate=validate_host_key,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    StackValidationPolicy(
        name="vllm-dp-group-consistent",
        description="All nodes form one data-parallel group: one head, shared size, port, address, image and model flags, contiguous ranks.",
        validate=validate_dp_group,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="vllm-api-key-on-open-api",
        description="An API listening on all interfaces requires an API key (--api-key or VLLM_API_KEY).",
        validate=validate_open_api,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
