"""Isolation: what a serving container may reach on its host, and who may reach its API."""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from core.observability import NPU_EXPORTER_PROGRAM, NPU_EXPORTER_ROLE, ROLE_LABEL
from core.plan import DRIVER_PATHS
from props import ContainerView, contains, host_mounts, is_unknown, on_container, stack_views

# Anything below these is driver or firmware too, whatever the exact path.
DRIVER_TREES = ("/usr/local/Ascend/driver", "/usr/local/Ascend/firmware", "/usr/local/dcmi")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")


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


_ALL_INTERFACES = {"0.0.0.0", "::", "[::]", ""}


def validate_open_api(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for v in stack_views(args):
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


OPEN_API = StackValidationPolicy(
    name="vllm-api-key-on-open-api",
    description="An API listening on all interfaces requires an API key (--api-key or VLLM_API_KEY).",
    validate=validate_open_api,
    enforcement_level=EnforcementLevel.ADVISORY,
)
