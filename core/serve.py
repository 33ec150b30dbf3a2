"""A node's `vllm serve` command line and environment: the tutorial's per-node scripts, decided
from the config and the node's part in the data-parallel group."""

from __future__ import annotations

import json
from typing import Literal

from .config import MODEL_FLAGS, NETWORK_ENV, SECRET_ENV, ClusterConfig, to_snake
from .pd import transfers_kv

# A node's part in the group: alone, the head serving the API, or a headless member.
Role = Literal["single", "head", "headless"]


def _setting(cfg: ClusterConfig, path: str):
    value = cfg
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _flag_args(flag: str, value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return [flag if value else f"--no-{flag[2:]}"]
    if isinstance(value, dict):
        return [flag, json.dumps(value, separators=(",", ":"))]
    return [flag, str(value)]


def serve_argv(
    cfg: ClusterConfig, role: Role, start_rank: int, dp_local: int, behind_router: bool = False
) -> tuple[str, ...]:
    s = cfg.serve
    head_ip = cfg.nodes[0].ip
    argv = ["vllm", "serve", cfg.model.name, "--host", cfg.api_host, "--port", str(s.port)]
    if role == "headless":
        argv.append("--headless")
    argv += ["--data-parallel-size", str(s.data_parallel_size)]
    if role != "single":
        argv += ["--data-parallel-size-local", str(dp_local)]
        if role == "headless":
            argv += ["--data-parallel-start-rank", str(start_rank)]
        argv += ["--data-parallel-address", head_ip, "--data-parallel-rpc-port", str(s.data_parallel_rpc_port)]
    for flag, path in MODEL_FLAGS:
        argv += _flag_args(flag, _setting(cfg, path))
    if not s.enable_prefix_caching:
        argv.append("--no-enable-prefix-caching")
    if behind_router:
        # vllm aborts its requests on SIGTERM unless given time to finish them; the group was drained
        # from the router first, so this only covers what the drain timeout left running. It ends
        # before whoever stops vllm gives up: the supervisor, else Docker's stop grace.
        sup = cfg.supervision
        stopper = sup.stop_timeout_seconds if sup.enabled else cfg.container.stop_grace_seconds
        argv += ["--shutdown-timeout", str(max(stopper - 5, 1))]
    return tuple(argv + list(s.extra_args))


def node_env(cfg: ClusterConfig, ip: str, nic: str) -> tuple[tuple[str, str], ...]:
    network = dict(zip(NETWORK_ENV, (ip, nic, nic, nic), strict=True))
    tuned = cfg.env.for_topology(multi_node=len(cfg.nodes) > 1)
    modelscope = {"VLLM_USE_MODELSCOPE": "True" if cfg.model.use_modelscope else "False"}
    secrets = {name: getattr(cfg, to_snake(key)) for key, name in SECRET_ENV.items()}
    secrets = {name: value for name, value in secrets.items() if value is not None}
    # A KV producer advertises this address to its consumers; unset, Mooncake takes the source
    # address of a route to the internet, which need not be the cluster NIC's.
    advertised = {"VLLM_HOST_IP": ip} if transfers_kv(cfg) else {}
    return tuple({**network, **tuned, **modelscope, **advertised, **secrets}.items())
