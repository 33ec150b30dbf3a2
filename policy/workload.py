"""The workload: what a vllm container needs to start and serve (shared memory, networking for
its group, one NPU per rank, the quantization and memory settings of a W8A8 model)."""

from __future__ import annotations

import re
from collections.abc import Callable

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy

from core.plan import MANAGEMENT_DEVICES
from props import ContainerView, as_list, is_unknown, on_container

DEFAULT_MIN_SHM_MIB = 1024
DEFAULT_MAX_GPU_MEMORY_UTILIZATION = 0.95
# vllm's own defaults for flags a command leaves out.
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
_DAVINCI = re.compile(r"^/dev/davinci(\d+)$")


def _number(description: str, default: float, **bounds: float) -> dict:
    return {"type": "number", "default": default, "description": description, **bounds}


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


SHM_SIZE = ResourceValidationPolicy(
    name="vllm-shm-size",
    description="vllm containers get enough shared memory (/dev/shm) for their workers.",
    validate=on_container(check_shm, ("minShmMiB", DEFAULT_MIN_SHM_MIB)),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={"minShmMiB": _number("Smallest shmSize in MiB.", DEFAULT_MIN_SHM_MIB, minimum=64)}
    ),
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


HOST_NETWORK = ResourceValidationPolicy(
    name="vllm-host-network",
    description="Ranks of a multi-node data-parallel group use host networking.",
    validate=on_container(check_host_network),
    enforcement_level=EnforcementLevel.MANDATORY,
)


def check_npu_devices(view: ContainerView, report: Callable[[str], None]) -> None:
    if not view.argv:
        return
    devices = as_list(view.props.get("devices"))
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


NPU_DEVICES = ResourceValidationPolicy(
    name="vllm-npu-devices-match-parallelism",
    description="Each node mounts one /dev/davinciN per local rank x tensor-parallel size, plus the three management devices.",
    validate=on_container(check_npu_devices),
    enforcement_level=EnforcementLevel.MANDATORY,
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


W8A8_SERVE_FLAGS = ResourceValidationPolicy(
    name="vllm-w8a8-serve-flags",
    description="W8A8 models are served with --quantization ascend and a --gpu-memory-utilization in (0, 0.95].",
    validate=on_container(check_serve_flags, ("maxGpuMemoryUtilization", DEFAULT_MAX_GPU_MEMORY_UTILIZATION)),
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
)
