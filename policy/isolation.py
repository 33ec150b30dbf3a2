"""Isolation: what a container may reach on its host (devices, privileges, namespaces, mounts).

Every container of the stack is checked, whatever it runs: a container is as dangerous to its
host whether its command is `vllm serve`, an exporter or a shell. Only the wording differs (a
serving container's messages say what vllm needs).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from core.config import WEIGHTS_MOUNT
from core.observability import PROMETHEUS_DATA
from core.plan import DRIVER_PATHS, MANAGEMENT_DEVICES, NODE_LABEL, ROLE_LABEL
from core.section import SYSTEM_TREES, system_directory
from props import (
    CONTAINER,
    LOCAL_COMMAND,
    UNKNOWN,
    VOLUME,
    ContainerView,
    as_list,
    container_view,
    docker_address,
    is_unknown,
    labels_of,
    node_name,
    plain,
    setting,
)

# Anything below these is driver or firmware too, whatever the exact path.
DRIVER_TREES = ("/usr/local/Ascend/driver", "/usr/local/Ascend/firmware", "/usr/local/dcmi")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")
# The host's own directories: mounting one of them hands the container the host's programs,
# configuration, credentials or state.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/usr", "/var",
)  # fmt: skip
# Of those, the ones whose every subdirectory is the system's too (core's SYSTEM_TREES; data may
# live below /var, /home, /opt or /srv, e.g. /var/lib/models). /root's own cache is the default
# weights directory, which is allowed as the weights mount.
# The host devices a container may be given: the NPUs and Ascend's management devices, at their
# own paths or below a node's hostRoot (the local stack's fake devices).
_NPU_DEVICE = re.compile(r"(/.*)?(/dev/davinci[0-9]+|" + "|".join(re.escape(d) for d in MANAGEMENT_DEVICES) + ")")
NPU_DEVICES_SHOWN = "/dev/davinciN, " + ", ".join(MANAGEMENT_DEVICES)
# A pinned image as a container names it: the image id Docker gave the pulled build (what the
# program's containers name, from their RemoteImage), or a reference with a digest.
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
_PINNED_REFERENCE = re.compile(r"[^@\s]+@(sha256:[0-9a-f]{64})")
# securityOpts that switch off a confinement Docker gives every container, with what that opens.
# Docker takes both `key=value` and the older `key:value`.
_UNCONFINED = {
    ("seccomp", "unconfined"): "turns off the seccomp filter that keeps the container from the kernel calls "
    "used to escape to the host",
    ("apparmor", "unconfined"): "turns off the AppArmor profile that keeps the container from mounting and "
    "from writing the host's /proc and /sys",
    ("systempaths", "unconfined"): "unmasks the /proc and /sys paths Docker hides from containers "
    "(/proc/sysrq-trigger, /proc/kcore, /sys/firmware, ...)",
    ("label", "disable"): "turns off the SELinux separation between the container and the host",
    ("label", "type:spc_t"): "runs the container as an SELinux super-privileged container, unconfined",
    ("label", "type:unconfined_t"): "runs the container unconfined by SELinux",
    ("writable-cgroups", "true"): "makes the host's cgroup tree writable from the container",
}


def norm_path(path: Any) -> str | None:
    if not isinstance(path, str) or is_unknown(path) or not path.startswith("/"):
        return None
    return posixpath.normpath(path).replace("//", "/")


def contains(outer: str, inner: str) -> bool:
    return outer == "/" or inner == outer or inner.startswith(outer + "/")


@dataclass(frozen=True)
class HostMount:
    """A host path a container sees."""

    host: str | None
    # Where the container sees it; None for a docker.Volume (wherever a container mounts it).
    target: str | None
    read_only: Any  # True, False/None (writable), or UNKNOWN
    # Bound through a local-driver volume (`o=bind`, `device=<host path>`), not a plain bind.
    via_volume: bool = False

    @property
    def where(self) -> str:
        if self.target is None:
            return "through this local-driver volume (o=bind) wherever a container mounts it"
        return f"at {self.target}" + (" through a local-driver volume (o=bind)" if self.via_volume else "")


def local_bind(driver: Any, options: Any) -> tuple[str | None, Any] | None:
    """(host path, read-only) of a volume that Docker's local driver binds from the host
    (`o: bind`, `device: /path`); None for any other volume; (None, UNKNOWN) while unknown."""
    if is_unknown(driver) or is_unknown(options):
        return None, UNKNOWN
    if driver not in (None, "", "local") or not isinstance(options, dict):
        return None
    o = options.get("o")
    if is_unknown(o) or is_unknown(options.get("device")):
        return None, UNKNOWN
    flags = {f.strip() for f in o.split(",")} if isinstance(o, str) else set()
    if not flags & {"bind", "rbind"}:
        return None
    return norm_path(options.get("device")), "ro" in flags


def host_mounts(props: dict) -> list[HostMount] | None:
    """Every host path the container mounts: `volumes[].hostPath`, bind `mounts`, and `mounts` of
    type volume that the local driver binds from the host; None if the lists are unknown."""
    volumes, binds = as_list(props.get("volumes")), as_list(props.get("mounts"))
    if volumes is None or binds is None:
        return None
    out = []
    for v in volumes:
        if isinstance(v, dict):
            out.append(HostMount(norm_path(v.get("hostPath")), norm_path(v.get("containerPath")), v.get("readOnly")))
    for m in binds:
        if not isinstance(m, dict) or is_unknown(m.get("type")):
            continue
        target, read_only = norm_path(m.get("target")), m.get("readOnly")
        if m.get("type") in (None, "bind"):
            out.append(HostMount(norm_path(m.get("source")), target, read_only))
        elif m.get("type") == "volume":
            options = m.get("volumeOptions")
            if is_unknown(options) or not isinstance(options, dict):
                continue
            bound = local_bind(options.get("driverName"), options.get("driverOptions"))
            if bound is not None:
                device, ro = bound
                read_only = True if read_only is True or ro is True else (UNKNOWN if is_unknown(ro) else read_only)
                out.append(HostMount(device, target, read_only, via_volume=True))
    return out


def volume_mounts(props: dict) -> list[HostMount]:
    """The host path a docker.Volume binds (driver local, `o: bind`), as a mount of its own."""
    bound = local_bind(props.get("driver"), props.get("driverOpts"))
    if bound is None:
        return []
    device, ro = bound
    return [HostMount(device, None, ro)]


def is_driver_path(path: str | None) -> bool:
    return path is not None and (path in DRIVER_PATHS or any(contains(t, path) for t in DRIVER_TREES))


def _holds_driver(target: str | None) -> bool:
    return target is not None and target != "/" and any(contains(target, t) for t in DRIVER_TREES)


def volume_who(args: ResourceValidationArgs, props: dict) -> str:
    """`node <node> (volume <name>)`: the node from its label, else its Docker host's address."""
    labels = labels_of(props.get("labels"))
    node = labels.get(NODE_LABEL) or docker_address(getattr(args, "provider", None)) or node_name(args.name, {}, "")
    return f"node {node} (volume {args.name})"


def on_resources(
    container: Callable[..., None] | None,
    volume: Callable[[str, list[HostMount], Callable[[str], None]], None] | None = None,
    command: Callable[[ResourceValidationArgs, dict, Callable[[str], None]], None] | None = None,
    *config: tuple[str, Any],
):
    """A resource policy's validate: `container(view, report, *settings)` on each container,
    `volume(who, mounts, report)` on each docker.Volume that binds a host path, `command(args,
    props, report)` on each local command (the program's steps)."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        def report(message: str) -> None:
            report_violation(message, None)

        if args.resource_type == CONTAINER and container is not None:
            view = container_view(args.urn, args.name, args.props, provider=getattr(args, "provider", None))
            container(view, report, *[setting(args, key, default) for key, default in config])
        elif args.resource_type in (VOLUME, LOCAL_COMMAND):
            props = plain(args.props)
            if not isinstance(props, dict):
                return
            if args.resource_type == VOLUME and volume is not None:
                volume(volume_who(args, props), volume_mounts(props), report)
            elif args.resource_type == LOCAL_COMMAND and command is not None:
                command(args, props, report)

    return validate


# --- vllm-container-host-isolation ------------------------------------------------------------


def _reason(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _pinned_key(image: Any) -> str | None:
    """The image as the pack config names it when it is pinned (an image id, or a reference with a
    digest); None for a tag or an unknown image."""
    if not isinstance(image, str) or is_unknown(image):
        return None
    return image if _IMAGE_ID.fullmatch(image) or _PINNED_REFERENCE.fullmatch(image) else None


def image_allowed_privileged(image: Any, allowed: dict) -> bool:
    """Whether the pack config names this pinned image, with a reason, as one that runs
    privileged: by the image id or the reference@digest the container names, or by that digest."""
    key = _pinned_key(image)
    if key is None:
        return False
    pinned = {k for k, why in allowed.items() if _reason(why) and _pinned_key(k)}
    reference = _PINNED_REFERENCE.fullmatch(key)
    return key in pinned or (reference is not None and reference.group(1) in pinned)


def _check_privileged(view: ContainerView, report: Callable[[str], None], allowed: dict) -> None:
    if view.props.get("privileged") is not True:
        return
    refused = f"{view.who}: the container runs privileged, which hands it every host device and capability"
    if view.is_serving:
        # vllm never needs it: the NPUs are devices.
        report(f"{refused}; set container.privileged to false (the NPUs are passed as devices)")
        return
    image = view.props.get("image")
    if is_unknown(image) and any(_reason(why) for why in allowed.values()):
        return  # which image it is comes at `pulumi up`
    if image_allowed_privileged(image, allowed):
        return
    key = _pinned_key(image)
    config = '"vllm-container-host-isolation": {"privilegedImages": {"%s": "<reason>"}}'
    if key:
        report(
            f"{refused}; pass it the devices it needs instead, or, if this exact image must run privileged, "
            f"name it in the pack config: {config % key}"
        )
    else:
        shown = f"its image {image}" if isinstance(image, str) and not is_unknown(image) else "its image"
        report(
            f"{refused}; pass it the devices it needs instead, or, if {shown} must run privileged, pin it by "
            f"digest and name it in the pack config: {config % '<image id or reference@sha256:digest>'}"
        )


def _check_devices(view: ContainerView, report: Callable[[str], None]) -> None:
    for device in as_list(view.props.get("devices")) or []:
        host = norm_path(device.get("hostPath")) if isinstance(device, dict) else None
        if host is not None and not _NPU_DEVICE.fullmatch(host):
            report(
                f"{view.who}: host device {host} is passed to the container, which then reads and writes it "
                f"past every other isolation check; pass only the NPU devices ({NPU_DEVICES_SHOWN})"
            )
    for rule in as_list(view.props.get("deviceCgroupRules")) or []:
        if isinstance(rule, str) and not is_unknown(rule):
            report(
                f"{view.who}: deviceCgroupRules '{rule}' lets the container open host devices that devices "
                "does not pass (with Docker's default CAP_MKNOD, the host's disks); remove deviceCgroupRules: "
                "the NPUs need only devices"
            )


def _security_opt(option: str) -> tuple[str, str] | None:
    key, sep, value = option.strip().partition("=")
    if not sep:
        key, _, value = option.strip().partition(":")
    found = (key.strip().lower(), value.strip().lower())
    return found if found in _UNCONFINED else None


def _check_security_opts(view: ContainerView, report: Callable[[str], None]) -> None:
    for option in as_list(view.props.get("securityOpts")) or []:
        found = _security_opt(option) if isinstance(option, str) and not is_unknown(option) else None
        if found:
            report(f"{view.who}: securityOpts '{option}' {_UNCONFINED[found]}; remove it from securityOpts")


def _check_volumes_from(view: ContainerView, report: Callable[[str], None]) -> None:
    for v in as_list(view.props.get("volumes")) or []:
        source = v.get("fromContainer") if isinstance(v, dict) else None
        if isinstance(source, str) and source and not is_unknown(source):
            report(
                f"{view.who}: volumes[].fromContainer '{source}' gives the container every volume of "
                f"container {source}, host directories included, where no policy sees them; mount the "
                "paths it needs itself"
            )


def _check_host_paths(who: str, mounts: list[HostMount], report: Callable[[str], None]) -> None:
    for m in mounts:
        host, target = m.host, m.target
        if host is None:
            continue
        if host == "/":
            report(
                f"{who}: the host root / is mounted {m.where}, which exposes the whole host; mount only the "
                "paths the container needs"
            )
            continue
        socket = next((s for s in DOCKER_SOCKETS if contains(host, s)), None)
        if socket:
            shown = host if host == socket else f"{host} (holding {socket})"
            via = "" if target is not None and not m.via_volume else f" {m.where}"
            report(
                f"{who}: {shown} is mounted{via}, which gives the container root on the host "
                "through the container engine; remove that volume"
            )
            continue
        # A driver path, or a directory in the container that holds the driver (/usr/local/Ascend).
        driver = is_driver_path(target) or is_driver_path(host) or _holds_driver(target)
        if driver and m.read_only is not True and not is_unknown(m.read_only):
            report(
                f"{who}: driver mount {host} -> {target or '(volume)'} is writable, so the container could "
                "change the host's NPU driver; mount it with readOnly: true"
            )


def check_host_isolation(view: ContainerView, report: Callable[[str], None], allowed: dict) -> None:
    _check_privileged(view, report, allowed if isinstance(allowed, dict) else {})
    _check_devices(view, report)
    _check_security_opts(view, report)
    _check_volumes_from(view, report)
    mounts = host_mounts(view.props)
    if mounts is not None:
        _check_host_paths(view.who, mounts, report)


HOST_ISOLATION = ResourceValidationPolicy(
    name="vllm-container-host-isolation",
    description=(
        "No container runs privileged (but a pinned image the pack config names), gets host devices beyond the "
        "NPUs, device cgroup rules, unconfined securityOpts or another container's volumes, or mounts / or the "
        "Docker socket (also through a local-driver volume); NPU driver mounts are read-only."
    ),
    validate=on_resources(check_host_isolation, _check_host_paths, None, ("privilegedImages", {})),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "privilegedImages": {
                "type": "object",
                "additionalProperties": {"type": "string", "minLength": 1},
                "default": {},
                "description": "Images that may run privileged, each with the reason: the image id a container "
                "names (sha256:<64 hex>, `docker inspect -f {{.Id}}`) or a reference pinned by digest "
                '(name@sha256:<64 hex>), e.g. {"sha256:...": "npu-exporter reads every chip"}. Never a vllm '
                "container; a tag pins nothing.",
            },
        }
    ),
)


# --- vllm-container-privileges -----------------------------------------------------------------

# Each host namespace a container may join: the input, and the pack setting that states why.
_HOST_NAMESPACES = {
    "pidMode": ("PID", "hostPidReason", "it can see, trace and signal every process on the host"),
    "ipcMode": ("IPC", "hostIpcReason", "it shares the host's shared memory (vllm needs only its own shmSize)"),
    "usernsMode": (
        "user",
        "hostUsernsReason",
        "its root is the host's root even where the Docker engine remaps users (userns-remap)",
    ),
    "cgroupnsMode": ("cgroup", "hostCgroupnsReason", "it sees the host's whole cgroup tree"),
}


def _capability(name: str) -> str:
    return name.upper().removeprefix("CAP_")


def check_privileges(view: ContainerView, report: Callable[[str], None], allowed: dict, *reasons: str) -> None:
    noun = "the serving container" if view.is_serving else "the container"
    capabilities = view.props.get("capabilities")
    adds = as_list(capabilities.get("adds")) if isinstance(capabilities, dict) else []
    allowed = allowed if isinstance(allowed, dict) else {}
    reasoned = {_capability(k) for k, why in allowed.items() if _reason(why)}
    needs = "vllm does not need" if view.is_serving else "beyond Docker's defaults"
    for cap in adds or []:
        if isinstance(cap, str) and not is_unknown(cap) and _capability(cap) not in reasoned:
            report(
                f"{view.who}: capabilities.adds {cap} gives {noun} a host privilege {needs}; remove it, or "
                "state why in the pack config: "
                f'"vllm-container-privileges": {{"allowedCapabilities": {{"{_capability(cap)}": "<reason>"}}}}'
            )
    stated = dict(zip([s for _, s, _ in _HOST_NAMESPACES.values()], reasons, strict=True))
    for key, (namespace, setting_, risk) in _HOST_NAMESPACES.items():
        if view.props.get(key) == "host" and not _reason(stated[setting_]):
            report(
                f"{view.who}: {key} 'host' puts {noun} in the host's {namespace} namespace, so {risk}; remove "
                f'{key}, or state why in the pack config: "vllm-container-privileges": {{"{setting_}": "<reason>"}}'
            )


def _namespace_schema(namespace: str) -> dict:
    return {
        "type": "string",
        "default": "",
        "description": f"Why containers share the host's {namespace} namespace; empty forbids it.",
    }


PRIVILEGES = ResourceValidationPolicy(
    name="vllm-container-privileges",
    description="No container adds Linux capabilities or shares the host's PID, IPC, user or cgroup namespace, "
    "unless the pack config states why.",
    validate=on_resources(
        check_privileges,
        None,
        None,
        ("allowedCapabilities", {}),
        *[(setting_, "") for _, setting_, _ in _HOST_NAMESPACES.values()],
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "allowedCapabilities": {
                "type": "object",
                "additionalProperties": {"type": "string", "minLength": 1},
                "default": {},
                "description": "Capabilities a container may add, each with the reason, "
                'e.g. {"SYS_PTRACE": "py-spy profiling"}.',
            },
            **{setting_: _namespace_schema(namespace) for namespace, setting_, _ in _HOST_NAMESPACES.values()},
        }
    ),
)


# --- vllm-host-system-dirs(-writable) ----------------------------------------------------------


def _system_dir(host: str) -> str | None:
    """The host system directory `host` is, lies in, or holds (/var/lib holds /var/lib/docker)."""
    if host in SYSTEM_DIRS:
        return host
    return next((t for t in SYSTEM_TREES if contains(t, host) or contains(host, t)), None)


def _shown(host: str, system: str) -> str:
    if host == system:
        return f"host system directory {host}"
    if contains(system, host):
        return f"{host} (in host system directory {system})"
    return f"{host} (holding host system directory {system})"


def _prometheus_default() -> str:
    from core.observability_settings import Prometheus

    return Prometheus.model_fields["data_dir"].default


def _fix(view: ContainerView | None, m: HostMount, read_only: bool) -> str:
    """The way forward for a system-directory mount: the config key that set it, where one did."""
    own = "a directory of its own outside the host system directories"
    if view is not None and view.is_serving and m.target == WEIGHTS_MOUNT:
        return f"set model.weightsDir to {own} (e.g. /data/models), or leave it at its default {WEIGHTS_MOUNT}"
    if view is not None and view.labels.get(ROLE_LABEL) == "prometheus" and m.target == PROMETHEUS_DATA:
        return f"set observability.prometheus.dataDir to {own} (by default {_prometheus_default()})"
    if m.target is None:
        return "remove that volume, or bind it read-only (o: bind,ro) if a container must read it"
    if read_only:
        return "remove that volume, or mount only the files it needs from outside the system directories"
    return "remove that volume, or give it readOnly: true if the container must read it"


def _system_mounts(view: ContainerView | None, mounts: list[HostMount]) -> list[tuple[HostMount, bool, str]]:
    """(mount, read-only, system directory) of each mount of a host system directory; not the driver
    files at their own paths, not the default weights directory, and not / or the Docker socket,
    which vllm-container-host-isolation reports."""
    found = []
    for m in mounts:
        host, target = m.host, m.target
        if host is None or is_unknown(m.read_only) or (target is None and view is not None):
            continue  # not known yet
        if host == "/" or any(contains(host, s) for s in DOCKER_SOCKETS):
            continue
        # A driver file at its own path, below the node's hostRoot or not.
        if target is not None and is_driver_path(target) and host.endswith(target):
            continue
        # The tutorial's weights directory (model.weightsDir's default) and below it, in a vllm
        # container; any other weights directory in a system directory is reported like any mount.
        if view is not None and view.may_serve and target == WEIGHTS_MOUNT and contains(WEIGHTS_MOUNT, host):
            continue
        system = _system_dir(host)
        if system:
            found.append((m, m.read_only is True, system))
    return found


def _report_system_mounts(
    view: ContainerView | None, who: str, mounts: list[HostMount], report: Callable[[str], None], writable: bool
) -> None:
    noun = "the serving container" if view is not None and view.is_serving else "the container"
    for m, read_only, system in _system_mounts(view, mounts):
        if writable and not read_only:
            report(
                f"{who}: {_shown(m.host, system)} is mounted writable {m.where}, so {noun} can change the host "
                f"itself; {_fix(view, m, False)}"
            )
        elif not writable and read_only:
            report(
                f"{who}: {_shown(m.host, system)} is mounted read-only {m.where}, which shows {noun} the host's "
                f"files (configuration, keys, other services' state); {_fix(view, m, True)}"
            )


def _container_system_dirs(writable: bool) -> Callable[[ContainerView, Callable[[str], None]], None]:
    def check(view: ContainerView, report: Callable[[str], None]) -> None:
        mounts = host_mounts(view.props)
        if mounts is not None:
            _report_system_mounts(view, view.who, mounts, report, writable)

    return check


def _volume_system_dirs(writable: bool) -> Callable[[str, list[HostMount], Callable[[str], None]], None]:
    def check(who: str, mounts: list[HostMount], report: Callable[[str], None]) -> None:
        _report_system_mounts(None, who, mounts, report, writable)

    return check


# The program's step that creates a directory and hands it to a user (checks/steps.py).
OWNED_DIR_STEP = "owned-dir"


def _step_spec(create: Any, step: str) -> dict | None:
    """The spec of `"$DEPLOY_PYTHON" -m checks <step> '<spec>'`; None for any other command."""
    if not isinstance(create, str) or is_unknown(create):
        return None
    try:
        words = shlex.split(create)
    except ValueError:
        return None
    for i in range(len(words) - 3):
        if words[i : i + 3] == ["-m", "checks", step]:
            try:
                spec = json.loads(words[i + 3])
            except (ValueError, IndexError):
                return None
            return spec if isinstance(spec, dict) else None
    return None


def check_owned_dir_step(args: ResourceValidationArgs, props: dict, report: Callable[[str], None]) -> None:
    """The step chowns its path on the host, before any container mounts it: a system directory
    handed to another user is a path to root, whatever a policy later says about the container."""
    spec = _step_spec(props.get("create"), OWNED_DIR_STEP)
    path = norm_path(spec.get("path")) if spec else None
    if path is None:
        return
    system = "/" if path == "/" else _system_dir(path)
    if system is None and not system_directory(path):
        return
    if path == "/":
        shown = "the host root /"
    else:
        # The program's own rule refuses more for a directory it hands over (a top-level directory,
        # one directly under /home, /opt, /srv, /var, ...) than a mount of one.
        shown = _shown(path, system) if system else f"host directory {path}"
    owner = spec.get("owner")
    node = spec.get("node") if isinstance(spec.get("node"), str) else "?"
    report(
        f"node {node} ({args.name}): step {OWNED_DIR_STEP} makes {shown} owned by uid {owner}, which hands the "
        "host's own files to that user (a path to root on the node); set observability.prometheus.dataDir to "
        f"a directory of its own outside the host system directories (by default {_prometheus_default()})"
    )


SYSTEM_DIRS_WRITABLE = ResourceValidationPolicy(
    name="vllm-host-system-dirs-writable",
    description="No container mounts a host system directory (/etc, /root, /var, /usr, ...) writable, directly "
    "or through a local-driver volume, the driver files and the default weights directory aside; no step "
    "hands one to another user.",
    validate=on_resources(_container_system_dirs(True), _volume_system_dirs(True), check_owned_dir_step),
    enforcement_level=EnforcementLevel.MANDATORY,
)


SYSTEM_DIRS_READ_ONLY = ResourceValidationPolicy(
    name="vllm-host-system-dirs",
    description="No container mounts a host system directory even read-only, the driver files and the default "
    "weights directory aside.",
    validate=on_resources(_container_system_dirs(False), _volume_system_dirs(False)),
    enforcement_level=EnforcementLevel.ADVISORY,
)
