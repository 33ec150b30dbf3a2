"""Prefill-decode disaggregation: a group's role (prefill or decode) turned into its sizes, flags,
environment and `--kv-transfer-config`, derived once for the whole deployment, so that the two
sides never disagree (facts and sources: ../shared/reference/pd-disaggregation-notes.md).

Every PD group is one vllm instance (a data-parallel group, its own engine): prefill instances
produce the KV cache, decode instances consume it over Mooncake, and a proxy in front sends each
request to a prefiller, then to a decoder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .defaults import MULTI_NODE_ENV, SINGLE_NODE_ENV
from .models import ClusterConfig, Env
from .router_settings import Group

CONNECTOR = "MooncakeConnectorV1"  # vllm-ascend's; "MooncakeConnector" loads vllm's GPU one
KV_ROLES = {"prefill": "kv_producer", "decode": "kv_consumer"}
# Flags the roles derive: refused in serve.extraArgs of a PD deployment.
DERIVED_PD_FLAGS = ("--kv-transfer-config", "--enforce-eager", "--additional-config")
# Mooncake's own transport picks random ports in [20000, 20000 + NPUs per node x 1000)
# (mooncake_connector.py); the KV ports start above it.
MOONCAKE_RANDOM_START = 20000
MTP_ONE_TOKEN = {"num_speculative_tokens": 1, "method": "mtp"}
# The recipe's environment on every PD node (it replaces the single-group tutorial's): no
# VLLM_ASCEND_BALANCE_SCHEDULING, which vllm-ascend refuses beside a KV producer or consumer.
PD_ENV = {
    "OMP_PROC_BIND": "false",
    "OMP_NUM_THREADS": "10",
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
    "TASK_QUEUE_ENABLE": "1",
    "HCCL_OP_EXPANSION_MODE": "AIV",
}
ROLE_ENV = {
    "prefill": {"HCCL_BUFFSIZE": "256", "VLLM_ASCEND_ENABLE_FLASHCOMM1": "1"},
    "decode": {"HCCL_BUFFSIZE": "600"},
}
# A3 on HDK 25.5.x (the recipe's hosts).
A3_ENV = {"ASCEND_BUFFER_POOL": "4:8"}
# Decode's graph sizes are multiples of the MTP step (n x (tokens + 1)); the n are ours, up to
# the decode batch.
_GRAPH_BATCHES = (1, 2, 4, 8, 16, 24, 28)


@dataclass(frozen=True)
class Instance:
    """One PD group as Mooncake sees it: its engine and the KV ports it takes on its nodes."""

    group: str
    role: str
    engine_id: str
    kv_port: int
    ports: int

    @property
    def last_port(self) -> int:
        return self.kv_port + self.ports - 1


def is_pd(cfg: ClusterConfig) -> bool:
    return any(g.role for g in cfg.groups)


def mooncake_random_end(cfg: ClusterConfig) -> int:
    """The last port of Mooncake's random range on this profile's nodes."""
    return MOONCAKE_RANDOM_START + cfg.hardware.npus * 1000 - 1


def instances(cfg: ClusterConfig) -> list[Instance]:
    """Every PD group's engine id and KV ports: one run of ports per instance, in group order, so
    no two instances share a port on any node (a decode group's nodes share its one run)."""
    port = cfg.pd.kv_port_base or mooncake_random_end(cfg) + 1
    found = []
    for group in cfg.groups:
        if not group.role:
            continue
        sizes = getattr(cfg.pd, group.role)
        ports = sizes.data_parallel_size * sizes.tensor_parallel_size
        found.append(Instance(group.name, group.role, group.name, port, ports))
        port += ports
    return found


def kv_transfer_config(cfg: ClusterConfig, instance: Instance) -> str:
    """The instance's --kv-transfer-config; the prefill and decode sizes are the same everywhere."""
    sizes = {
        role: {"dp_size": s.data_parallel_size, "tp_size": s.tensor_parallel_size}
        for role, s in (("prefill", cfg.pd.prefill), ("decode", cfg.pd.decode))
    }
    config = {
        "kv_connector": CONNECTOR,
        "kv_role": KV_ROLES[instance.role],
        "kv_port": str(instance.kv_port),
        "engine_id": instance.engine_id,
        "kv_connector_extra_config": sizes,
    }
    return json.dumps(config, separators=(",", ":"))


def _additional_config(role: str) -> str:
    # The recompute scheduler on both roles (it needs a KV producer or consumer); decode also
    # overlaps the shared expert's stream, as the recipe does.
    config: dict = {"recompute_scheduler_enable": True}
    if role == "decode":
        config["multistream_overlap_shared_expert"] = True
    return json.dumps(config, separators=(",", ":"))


def _compilation_config(role: str) -> str | None:
    if role == "prefill":
        return None  # eager: --enforce-eager
    step = MTP_ONE_TOKEN["num_speculative_tokens"] + 1
    return json.dumps(
        {"cudagraph_capture_sizes": [n * step for n in _GRAPH_BATCHES], "cudagraph_mode": "FULL_DECODE_ONLY"},
        separators=(",", ":"),
    )


def role_config(cfg: ClusterConfig, group: Group, nodes: list) -> ClusterConfig:
    """The group's own config: the stack's, with only its nodes and, for a PD group, its role's
    sizes, flags and environment. The benchmark measures the service as clients reach it, through
    the front door (components/router.py), not group by group."""
    own = {"nodes": nodes, "groups": [], "benchmark": cfg.benchmark.model_copy(update={"enabled": False})}
    if not group.role:
        return cfg.model_copy(update=own)
    instance = next(i for i in instances(cfg) if i.group == group.name)
    sizes = getattr(cfg.pd, group.role)
    derived = ["--kv-transfer-config", kv_transfer_config(cfg, instance)]
    derived += ["--enforce-eager"] if group.role == "prefill" else []
    derived += ["--additional-config", _additional_config(group.role)]
    serve = cfg.serve.model_copy(
        update={
            "data_parallel_size": sizes.data_parallel_size,
            "tensor_parallel_size": sizes.tensor_parallel_size,
            "max_num_seqs": sizes.max_num_seqs,
            "max_num_batched_tokens": sizes.max_num_batched_tokens,
            "async_scheduling": group.role == "decode",
            "enable_prefix_caching": False,
            "speculative_config": json.dumps(MTP_ONE_TOKEN, separators=(",", ":")),
            "compilation_config": _compilation_config(group.role),
            "extra_args": [*derived, *cfg.serve.extra_args],
        }
    )
    recipe = {**PD_ENV, **ROLE_ENV[group.role], **(A3_ENV if cfg.hardware.npus == 16 else {})}
    # The tutorial's variables give way to the recipe's; a site's own overrides still apply.
    env = Env(
        singleNode={**dict.fromkeys(SINGLE_NODE_ENV), **recipe, **cfg.env.single_node},
        multiNode={**dict.fromkeys(MULTI_NODE_ENV), **recipe, **cfg.env.multi_node},
        extra=cfg.env.extra,
    )
    return cfg.model_copy(update={**own, "serve": serve, "env": env})


def transfers_kv(cfg: ClusterConfig) -> bool:
    """A group config whose vllm hands KV over Mooncake (it advertises its node's address)."""
    return "--kv-transfer-config" in cfg.serve.extra_args
