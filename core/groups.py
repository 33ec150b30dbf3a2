"""Several data-parallel groups behind one router: each group's own config, and the rules across
groups (the router's plan is in router.py).

Each group is a whole deployment of today's kind: the stack's config with only the group's nodes
(its first node the head), so it gets its own plan, checks, supervisors, fingerprint and
verification, and a change to one group replaces only that group.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import ClusterConfig
from .pd import DERIVED_PD_FLAGS, instances, is_pd, mooncake_random_end, role_config
from .router_settings import CACHE_AWARE, Group
from .rules import topology_problems
from .vllm_args import ArgError, dotted_key, load_table, normalised, resolve

# vllm's flag that lets a group finish its requests on SIGTERM (0, its default, aborts them).
SHUTDOWN_TIMEOUT = "--shutdown-timeout"


def group_configs(cfg: ClusterConfig) -> list[tuple[str | None, ClusterConfig]]:
    """(name, config) per data-parallel group: the stack itself when it has no `groups`."""
    if not cfg.groups:
        return [(None, cfg)]
    return [(g.name, _group_config(cfg, g)) for g in cfg.groups]


def _group_config(cfg: ClusterConfig, group: Group) -> ClusterConfig:
    by_name = {n.name: n for n in cfg.nodes}
    return role_config(cfg, group, [by_name[n] for n in group.nodes])


def router_node(cfg: ClusterConfig) -> str:
    return cfg.router.node or cfg.groups[0].nodes[0]


def per_group(rules: Callable[[ClusterConfig], list[str]], cfg: ClusterConfig) -> list[str]:
    """A one-group rule judged on every group; a problem names its group. Groups whose node list
    is itself wrong (group_problems says so) are left out."""
    if not cfg.groups:
        return rules(cfg)
    known = {n.name for n in cfg.nodes}
    found = []
    for i, group in enumerate(cfg.groups):
        if set(group.nodes) <= known and len(set(group.nodes)) == len(group.nodes):
            found += [f"groups[{i}] ({group.name}): {p}" for p in rules(_group_config(cfg, group))]
    return found


def group_topology_problems(cfg: ClusterConfig) -> list[str]:
    return per_group(topology_problems, cfg)


def group_problems(cfg: ClusterConfig) -> list[str]:
    """Group names, which node is in which group, the router's node and its ports."""
    if not cfg.groups:
        return []
    problems = []
    known = [n.name for n in cfg.nodes]
    seen_groups: set[str] = set()
    placed: dict[str, str] = {}
    for i, group in enumerate(cfg.groups):
        if group.name in seen_groups:
            problems.append(f"groups[{i}].name: '{group.name}' names two groups; give each group its own name")
        seen_groups.add(group.name)
        for node in group.nodes:
            if node not in known:
                problems.append(f"groups[{i}].nodes: '{node}' is not a node; use names from nodes: {', '.join(known)}")
            elif node in placed:
                problems.append(
                    f"groups[{i}].nodes: '{node}' is also in group {placed[node]}; a node serves one group only"
                )
            else:
                placed[node] = group.name
    unplaced = [n for n in known if n not in placed]
    if unplaced:
        problems.append(f"groups: {', '.join(unplaced)} in no group; list every node in one group")
    if cfg.router.node is not None and cfg.router.node not in known:
        problems.append(f"router.node: '{cfg.router.node}' is not a node; use one of {', '.join(known)}")
    if not cfg.front_door.enabled:
        problems.append(
            "frontDoor.enabled: the router's admin routes (/add_worker, /remove_worker) answer anyone on its port; "
            "several groups need the front door, which passes only /v1 and /health on to it"
        )
    if SHUTDOWN_TIMEOUT not in load_table(cfg.image.vllm).options:
        problems.append(
            f"image.vllmVersion: vllm {cfg.image.vllm} has no {SHUTDOWN_TIMEOUT}, so a group stopped for a "
            "replacement would abort its requests; several groups need vllm 0.18.0 or later"
        )
    if cfg.router.policy == CACHE_AWARE and cfg.api_key is not None:
        problems.append(
            "router.policy: cache_aware has the router tokenize each request on every group's /v1 routes with a "
            "key of its own, given on its command line, where every user of its node reads it (ps); with apiKey "
            "set use round_robin, random or consistent_hash"
        )
    return problems + _router_port_problems(cfg) + pd_problems(cfg)


def _router_port_problems(cfg: ClusterConfig) -> list[str]:
    """The router and the front door share the router node's host network with its vllm."""
    router, sup = cfg.router, cfg.supervision
    taken = {
        "serve.port": cfg.serve.port,
        "serve.dataParallelRpcPort": cfg.serve.data_parallel_rpc_port,
        **({"supervision.metricsPort": sup.metrics_port} if sup.enabled else {}),
        **({"frontDoor.port": cfg.front_door.port} if cfg.front_door.enabled else {}),
    }
    problems = []
    for key, port in (("router.port", router.port), ("router.metricsPort", router.metrics_port)):
        clash = next((k for k, p in taken.items() if p == port), None)
        if clash:
            problems.append(f"{key}: {port} is also {clash}; the router needs ports of its own on its node")
        taken[key] = port
    return problems


def pd_problems(cfg: ClusterConfig) -> list[str]:
    """Roles that cannot form a prefill-decode deployment, each with its key and its reason."""
    if not is_pd(cfg):
        return []
    problems = []
    roles = [g.role for g in cfg.groups]
    for i, group in enumerate(cfg.groups):
        if not group.role:
            problems.append(
                f"groups[{i}].role: group {group.name} has none, but others have; in a prefill-decode deployment "
                "every group is prefill or decode"
            )
    missing = [r for r in ("prefill", "decode") if r not in roles]
    if missing:
        problems.append(f"groups: no {' and no '.join(missing)} group; a prefill-decode deployment needs both")
    p, d = cfg.pd.prefill.tensor_parallel_size, cfg.pd.decode.tensor_parallel_size
    if p < d or p % d:
        problems.append(
            f"pd.prefill.tensorParallelSize: {p} must be at least pd.decode.tensorParallelSize ({d}) and a multiple "
            "of it: a prefiller's KV blocks are split among the decoder's tensor-parallel ranks"
        )
    problems += _kv_port_problems(cfg)
    if not cfg.supervision.enabled:
        problems.append(
            "supervision.enabled: prefill and decode instances need what the vllm-ascend image sets only in an "
            "interactive shell (jemalloc, /usr/local/lib), which the supervisor gives vllm; keep it on"
        )
    for flag in _derived_pd_flags(cfg):
        problems.append(
            f"serve.extraArgs: {flag} is derived from each group's role (pd.* and groups[].role); remove it"
        )
    return problems


def _derived_pd_flags(cfg: ClusterConfig) -> list[str]:
    """The flags of serve.extraArgs that the roles derive, read as vllm reads them: unique prefixes,
    underscores and dotted JSON keys (`--kv-transfer-config.kv_port 1`) name them too."""
    table, found = load_table(cfg.image.vllm), []
    for item in normalised(cfg.serve.extra_args):
        dotted = dotted_key(item)
        try:
            option = resolve(dotted[0] if dotted else item, table)
        except ArgError:
            continue  # flags.py reports an unknown or ambiguous flag
        if option is not None and option.flag.name in DERIVED_PD_FLAGS and option.flag.name not in found:
            found.append(option.flag.name)
    return found


def _kv_port_problems(cfg: ClusterConfig) -> list[str]:
    """KV ports above Mooncake's random range, within 65535, and apart from every other port."""
    runs = instances(cfg)
    if not runs:
        return []
    first, last = runs[0].kv_port, runs[-1].last_port
    random_end = mooncake_random_end(cfg)
    if first <= random_end:
        return [
            f"pd.kvPortBase: {first} is inside Mooncake's random port range 20000-{random_end} on {cfg.profile}, "
            f"where its transfers collide with the KV ports now and then; use {random_end + 1} or above"
        ]
    if last > 65535:
        return [f"pd.kvPortBase: the KV ports would run to {last}, past 65535; use at most {65535 - (last - first)}"]
    taken = {
        "serve.port": cfg.serve.port,
        "serve.dataParallelRpcPort": cfg.serve.data_parallel_rpc_port,
        "supervision.metricsPort": cfg.supervision.metrics_port,
        "frontDoor.port": cfg.front_door.port,
        "router.port": cfg.router.port,
        "router.metricsPort": cfg.router.metrics_port,
    }
    return [
        f"pd.kvPortBase: the KV ports of group {run.group} ({run.kv_port}-{run.last_port}) include {key} {port}; "
        "move one of them"
        for run in runs
        for key, port in taken.items()
        if run.kv_port <= port <= run.last_port
    ]
