"""Isolation: what a container may reach on its host (devices, privileges, namespaces, mounts)."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy

from core.config import WEIGHTS_MOUNT
from core.observability import NPU_EXPORTER_PROGRAM, NPU_EXPORTER_ROLE
from core.plan import DRIVER_PATHS, ROLE_LABEL
from props import ContainerView, as_list, is_unknown, on_container

# Anything below these is driver or firmware too, whatever the exact path.
DRIVER_TREES = ("/usr/local/Ascend/driver", "/usr/local/Ascend/firmware", "/usr/local/dcmi")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")
# The host's own directories: mounting one of them hands the container the host's programs,
# configuration, credentials or state.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/usr", "/var",
)  # fmt: skip
# Of those, the ones whose every subdirectory is the system's too (data may live below /var,
# /home, /opt or /srv, e.g. /var/lib/models). /root's own cache is the default weights directory,
# which is allowed as the weights mount.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root", "/run", "/sbin",
    "/sys", "/usr", "/var/run", "/var/lib/docker", "/var/lib/containerd",
)  # fmt: skip


def norm_path(path: Any) -> str | None:
    if not isinstance(path, str) or is_unknown(path) or not path.startswith("/"):
        return None
    return posixpath.normpath(path).replace("//", "/")


def contains(outer: str, inner: str) -> bool:
    return outer == "/" or inner == outer or inner.startswith(outer + "/")


def host_mounts(props: dict) -> list[tuple[str | None, str | None, Any]] | None:
    """(host path, container path, read-only) of every volume and bind mount; None if unknown."""
    volumes, binds = as_list(props.get("volumes")), as_list(props.get("mounts"))
    if volumes is None or binds is None:
        return None
    out = []
    for v in volumes:
        if isinstance(v, dict):
            out.append((norm_path(v.get("hostPath")), norm_path(v.get("containerPath")), v.get("readOnly")))
    for m in binds:
        if isinstance(m, dict) and m.get("type") in (None, "bind") and not is_unknown(m.get("type")):
            out.append((norm_path(m.get("source")), norm_path(m.get("target")), m.get("readOnly")))
    return out


def is_driver_path(path: str | None) -> bool:
    return path is not None and (path in DRIVER_PATHS or any(contains(t, path) for t in DRIVER_TREES))


def may_run_privileged(view: ContainerView) -> bool:
    """npu-exporter reads every NPU through the driver's management interfaces: the one exception,
    for privileged mode only, and never for a container that runs vllm."""
    command = view.command if isinstance(view.command, list) else []
    return (
        not view.is_vllm and view.labels.get(ROLE_LABEL) == NPU_EXPORTER_ROLE and command[:1] == [NPU_EXPORTER_PROGRAM]
    )


def check_host_isolation(view: ContainerView, report: Callable[[str], None]) -> None:
    node, props = view.node, view.props
    if props.get("privileged") is True and not may_run_privileged(view):
        report(
            f"node {node}: the container runs privileged, which hands it every host device and "
            "capability; set container.privileged to false (the NPUs are passed as devices)"
        )
    mounts = host_mounts(props)
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
        socket = next((s for s in DOCKER_SOCKETS if contains(host, s)), None)
        if socket:
            shown = host if host == socket else f"{host} (holding {socket})"
            report(
                f"node {node}: {shown} is mounted, which gives the container root on the host "
                "through the container engine; remove that volume"
            )
            continue
        if (is_driver_path(target) or is_driver_path(host)) and read_only is not True and not is_unknown(read_only):
            report(
                f"node {node}: driver mount {host} -> {target} is writable, so the container could "
                "change the host's NPU driver; mount it with readOnly: true"
            )


HOST_ISOLATION = ResourceValidationPolicy(
    name="vllm-container-host-isolation",
    description=(
        "Containers are not privileged (but the npu-exporter), mount neither the Docker socket nor /, "
        "and mount the NPU driver read-only."
    ),
    validate=on_container(check_host_isolation),
    enforcement_level=EnforcementLevel.MANDATORY,
)


# Each host namespace a container may join: the input, and the pack setting that states why.
_HOST_NAMESPACES = {
    "pidMode": ("PID", "hostPidReason", "it can see, trace and signal every process on the host"),
    "ipcMode": ("IPC", "hostIpcReason", "it shares the host's shared memory (vllm needs only its own shmSize)"),
}


def _capability(name: str) -> str:
    return name.upper().removeprefix("CAP_")


def _reason(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_privileges(view: ContainerView, report: Callable[[str], None], allowed: dict, pid: str, ipc: str) -> None:
    if not view.is_serving:
        return
    capabilities = view.props.get("capabilities")
    adds = as_list(capabilities.get("adds")) if isinstance(capabilities, dict) else []
    reasoned = {_capability(k) for k, why in allowed.items() if _reason(why)}
    for cap in adds or []:
        if isinstance(cap, str) and not is_unknown(cap) and _capability(cap) not in reasoned:
            report(
                f"node {view.node}: capabilities.adds {cap} gives the serving container a host privilege "
                "vllm does not need; remove it, or state why in the pack config: "
                f'"vllm-container-privileges": {{"allowedCapabilities": {{"{_capability(cap)}": "<reason>"}}}}'
            )
    reasons = {"hostPidReason": pid, "hostIpcReason": ipc}
    for key, (namespace, setting, risk) in _HOST_NAMESPACES.items():
        if view.props.get(key) == "host" and not _reason(reasons[setting]):
            report(
                f"node {view.node}: {key} 'host' puts the serving container in the host's {namespace} "
                f"namespace, so {risk}; remove {key}, or state why in the pack config: "
                f'"vllm-container-privileges": {{"{setting}": "<reason>"}}'
            )


PRIVILEGES = ResourceValidationPolicy(
    name="vllm-container-privileges",
    description="Serving containers add no Linux capabilities and share neither the host's PID nor IPC namespace, unless the pack config states why.",
    validate=on_container(check_privileges, ("allowedCapabilities", {}), ("hostPidReason", ""), ("hostIpcReason", "")),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "allowedCapabilities": {
                "type": "object",
                "additionalProperties": {"type": "string", "minLength": 1},
                "default": {},
                "description": "Capabilities a serving container may add, each with the reason, "
                'e.g. {"SYS_PTRACE": "py-spy profiling"}.',
            },
            "hostPidReason": {
                "type": "string",
                "default": "",
                "description": "Why serving containers share the host's PID namespace; empty forbids it.",
            },
            "hostIpcReason": {
                "type": "string",
                "default": "",
                "description": "Why serving containers share the host's IPC namespace; empty forbids it.",
            },
        }
    ),
)


def _system_dir(host: str) -> str | None:
    """The host system directory `host` is or lies in."""
    if host in SYSTEM_DIRS:
        return host
    return next((t for t in SYSTEM_TREES if contains(t, host)), None)


def _system_mounts(view: ContainerView) -> list[tuple[str, str, bool, str]]:
    """(host path, container path, read-only, system directory) of each mount of a host system
    directory; not the driver files, not the weights directory (unless it is a system directory
    itself), and not / or the Docker socket, which vllm-container-host-isolation reports."""
    mounts = host_mounts(view.props) if view.is_serving else None
    found = []
    for host, target, read_only in mounts or []:
        if host is None or target is None or is_unknown(read_only):
            continue  # not known yet
        if host == "/" or any(contains(host, s) for s in DOCKER_SOCKETS):
            continue
        # A driver file at its own path, below the node's hostRoot or not.
        if is_driver_path(target) and host.endswith(target):
            continue
        if target == WEIGHTS_MOUNT and host not in SYSTEM_DIRS:
            continue
        system = _system_dir(host)
        if system:
            found.append((host, target, read_only is True, system))
    return found


def _shown(host: str, system: str) -> str:
    return f"host system directory {host}" if host == system else f"{host} (in host system directory {system})"


def check_system_dirs_writable(view: ContainerView, report: Callable[[str], None]) -> None:
    for host, target, read_only, system in _system_mounts(view):
        if not read_only:
            report(
                f"node {view.node}: {_shown(host, system)} is mounted writable at {target}, so the serving "
                "container can change the host itself; remove that volume, or give it readOnly: true if "
                "the container must read it"
            )


SYSTEM_DIRS_WRITABLE = ResourceValidationPolicy(
    name="vllm-host-system-dirs-writable",
    description="Serving containers mount no host system directory (/etc, /root, /var, /usr, ...) writable, the driver files and weights directory aside.",
    validate=on_container(check_system_dirs_writable),
    enforcement_level=EnforcementLevel.MANDATORY,
)


def check_system_dirs(view: ContainerView, report: Callable[[str], None]) -> None:
    for host, target, read_only, system in _system_mounts(view):
        if read_only:
            report(
                f"node {view.node}: {_shown(host, system)} is mounted read-only at {target}, which shows "
                "the serving container the host's files (configuration, keys, other services' state); "
                "remove that volume, or mount only the files it needs from outside the system directories"
            )


SYSTEM_DIRS_READ_ONLY = ResourceValidationPolicy(
    name="vllm-host-system-dirs",
    description="Serving containers mount no host system directory even read-only, the driver files and weights directory aside.",
    validate=on_container(check_system_dirs),
    enforcement_level=EnforcementLevel.ADVISORY,
)
