"""Start-up checks: configuration, Ascend NPU devices, HCCL network env."""

import os
import re
import socket
import stat

from vllm_sim.log import Fatal

DAVINCI_RE = re.compile(r"^davinci[0-9]+$")
CONTROL_DEVICES = ("davinci_manager", "devmm_svm", "hisi_hdc")
IFNAME_VARS = ("HCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME")


def check_config(args) -> None:
    if args.data_parallel_size < 1:
        raise Fatal(f"--data-parallel-size must be >= 1, got {args.data_parallel_size}")
    if args.tensor_parallel_size < 1:
        raise Fatal(f"--tensor-parallel-size must be >= 1, got {args.tensor_parallel_size}")
    if args.data_parallel_size_local < 1:
        raise Fatal(f"--data-parallel-size-local must be >= 1, got {args.data_parallel_size_local}")
    if args.data_parallel_start_rank < 0:
        raise Fatal(f"--data-parallel-start-rank must be >= 0, got {args.data_parallel_start_rank}")
    end = args.data_parallel_start_rank + args.data_parallel_size_local
    if end > args.data_parallel_size:
        raise Fatal(
            "data-parallel-start-rank + data-parallel-size-local "
            f"({args.data_parallel_start_rank} + {args.data_parallel_size_local} = {end}) "
            f"exceeds data-parallel-size ({args.data_parallel_size})"
        )
    if args.headless and not args.data_parallel_address:
        raise Fatal("--headless requires --data-parallel-address (the DP head's address)")
    if args.headless and args.data_parallel_size_local == args.data_parallel_size:
        raise Fatal(
            "--headless node owns all data-parallel ranks "
            f"({args.data_parallel_size}); there would be no head to serve the API"
        )
    if args.max_model_len is not None and args.max_model_len < 1:
        raise Fatal(f"--max-model-len must be >= 1, got {args.max_model_len}")
    if args.max_num_seqs is not None and args.max_num_seqs < 1:
        raise Fatal(f"--max-num-seqs must be >= 1, got {args.max_num_seqs}")
    if args.gpu_memory_utilization is not None and not (0.0 < args.gpu_memory_utilization <= 1.0):
        raise Fatal(f"--gpu-memory-utilization must be in (0, 1], got {args.gpu_memory_utilization}")


def _is_device(path: str, allow_regular: bool) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if stat.S_ISCHR(st.st_mode):
        return True
    return allow_regular and stat.S_ISREG(st.st_mode)


def check_devices(args, env=None) -> list:
    """NPUs visible in the container must match tp x dp-local exactly."""
    env = os.environ if env is None else env
    dev_dir = env.get("VLLM_SIM_DEV_DIR", "/dev")
    allow_regular = env.get("VLLM_SIM_ALLOW_REGULAR_FILES") == "1"
    try:
        names = os.listdir(dev_dir)
    except OSError as e:
        raise Fatal(f"cannot list device directory {dev_dir}: {e}") from e
    npus = sorted(
        (n for n in names if DAVINCI_RE.match(n) and _is_device(os.path.join(dev_dir, n), allow_regular)),
        key=lambda n: int(n[len("davinci") :]),
    )
    need = args.tensor_parallel_size * args.data_parallel_size_local
    if len(npus) != need:
        shown = ", ".join(npus) if npus else "none"
        raise Fatal(
            f"found {len(npus)} NPU device(s) in {dev_dir} ({shown}) but "
            f"tensor-parallel-size x data-parallel-size-local = "
            f"{args.tensor_parallel_size} x {args.data_parallel_size_local} = {need}; "
            "pass exactly that many /dev/davinciN devices to the container"
        )
    missing = [n for n in CONTROL_DEVICES if not _is_device(os.path.join(dev_dir, n), allow_regular)]
    if missing:
        raise Fatal(
            "missing Ascend control device(s) "
            + ", ".join(os.path.join(dev_dir, n) for n in missing)
            + " (mount /dev/davinci_manager, /dev/devmm_svm and /dev/hisi_hdc)"
        )
    return npus


def _ifnames(value: str):
    """HCCL/GLOO style lists: 'eth0' or 'eth0,eth1'; a leading '=' (HCCL's
    exact-match marker) is ignored."""
    for part in value.split(","):
        part = part.strip().lstrip("=")
        if part:
            yield part


def check_network(env=None) -> str:
    env = os.environ if env is None else env
    ip = env.get("HCCL_IF_IP", "").strip()
    if not ip:
        raise Fatal("HCCL_IF_IP is not set (the IP of this node's HCCL interface)")
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
    except OSError as e:
        raise Fatal(
            f"HCCL_IF_IP={ip} is not an address of this host/container ({e.strerror or e}); "
            "with a bridge network the host IP is not visible inside the container"
        ) from e
    net_dir = env.get("VLLM_SIM_NET_DIR", "/sys/class/net")
    try:
        present = set(os.listdir(net_dir))
    except OSError as e:
        raise Fatal(f"cannot list network interfaces in {net_dir}: {e}") from e
    for var in IFNAME_VARS:
        value = env.get(var, "").strip()
        if not value:
            raise Fatal(f"{var} is not set (name of the network interface to use)")
        names = list(_ifnames(value))
        if not names:
            raise Fatal(f"{var}={value!r} names no interface")
        for name in names:
            if name not in present:
                raise Fatal(
                    f"{var}={value}: interface {name!r} not found in {net_dir} "
                    f"(present: {', '.join(sorted(present)) or 'none'})"
                )
    return ip
