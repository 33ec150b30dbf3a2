"""What stands before several groups on `router.node`: vllm-router, one worker per group (its
head's API); or, for prefill-decode groups, a proxy that sends each request to a prefiller and
then to a decoder: the proxy in the vllm-ascend image, or vllm-router's PD mode."""

from __future__ import annotations

from dataclasses import dataclass

from .defaults import UNSPECIFIED_HOSTS
from .groups import router_node
from .models import ClusterConfig
from .pd import is_pd
from .plan import ClusterPlan, NodePlan, url_host
from .sidecar import Sidecar, sidecar_labels

ROUTER_ROLE = "router"
PD_PROXY_ROLE = "pd-proxy"
# 200 while one group at least serves (its /health turns 503 as soon as any group is down).
READINESS_PATH = "/readiness"
# The proxy's own health route: static, it answers while the proxy runs (it probes no backend).
PD_PROXY_HEALTH = "/healthcheck"
# In the vllm-ascend image (examples/disaggregated_prefill_v1 of the vllm-ascend repository).
PD_PROXY_SCRIPT = "/vllm-workspace/vllm-ascend/examples/disaggregated_prefill_v1/load_balance_proxy_server_example.py"


@dataclass(frozen=True)
class RouterPlan:
    container: Sidecar
    # Where the membership steps reach it, on its node's cluster address.
    url: str
    # How long a group leaving the router gets to finish its requests.
    drain_seconds: int
    # Groups leave and rejoin it one at a time (components/router.py); a PD proxy's backends are
    # fixed at its start, so PD groups are replaced like any group, each on its own.
    rolls_out: bool
    # What the front door asks to know it serves.
    check_path: str


def router_url(cfg: ClusterConfig) -> str:
    node = next(n for n in cfg.nodes if n.name == router_node(cfg))
    return f"http://{url_host(node.ip)}:{cfg.router.port}"


def worker_url(group: ClusterPlan) -> str:
    """Where the router reaches a group: its head's API on the cluster address."""
    host = group.head.ip if group.listen_host in ("127.0.0.1", *UNSPECIFIED_HOSTS) else group.listen_host
    return f"http://{url_host(host)}:{group.port}"


def plan_router(cfg: ClusterConfig, stack: str, groups: tuple[ClusterPlan, ...]) -> RouterPlan | None:
    if not cfg.groups:
        return None
    r, name = cfg.router, router_node(cfg)
    node = next(n for g in groups for n in g.nodes if n.name == name)
    if is_pd(cfg):
        return _pd_proxy(cfg, stack, groups, node)
    argv = ("vllm-router", "--worker-urls", *(worker_url(g) for g in groups), *_router_flags(cfg, node))
    container = Sidecar(
        role=ROUTER_ROLE,
        node=name,
        name=f"{stack}-router",
        image=r.image,
        argv=argv,
        env=(),
        secret_env=frozenset(),
        mounts=(),
        uploads=(),
        labels=sidecar_labels(stack, name, ROUTER_ROLE),
    )
    return RouterPlan(container, router_url(cfg), r.drain_timeout_seconds, rolls_out=True, check_path=READINESS_PATH)


def _router_flags(cfg: ClusterConfig, node: NodePlan) -> tuple[str, ...]:
    """vllm-router's listener, policy, health checks and metrics, as this workload needs them."""
    r = cfg.router
    return (
        "--host",
        node.ip,
        "--port",
        str(r.port),
        "--policy",
        r.policy,
        "--health-check-interval-secs",
        str(r.health_check_interval_seconds),
        # A group's first weight load takes up to the readiness timeout; until one group serves the
        # router does not listen, and it looks as often as it checks health (its default is 30 s).
        "--worker-startup-timeout-secs",
        str(cfg.verify.readiness_timeout_seconds),
        "--worker-startup-check-interval",
        str(r.health_check_interval_seconds),
        # The health checks take a dead group out and bring it back; the circuit breaker its
        # failures open would otherwise keep a healed group idle for its default 60 s.
        "--cb-timeout-duration-secs",
        str(3 * r.health_check_interval_seconds),
        "--prometheus-host",
        node.ip,
        "--prometheus-port",
        str(r.metrics_port),
    )


def _pd_proxy(cfg: ClusterConfig, stack: str, groups: tuple[ClusterPlan, ...], node: NodePlan) -> RouterPlan:
    r = cfg.router
    by_role = {role: [g for g in groups if g.kv and g.kv.role == role] for role in ("prefill", "decode")}
    if cfg.pd.proxy == "vllm-router":
        argv: tuple[str, ...] = (
            "vllm-router",
            "--vllm-pd-disaggregation",
            *(arg for g in by_role["prefill"] for arg in ("--prefill", worker_url(g))),
            *(arg for g in by_role["decode"] for arg in ("--decode", worker_url(g))),
            *_router_flags(cfg, node),
        )
        image, role, check, env = r.image, ROUTER_ROLE, READINESS_PATH, ()
    else:
        hosts = {role: [g.head.ip for g in members] for role, members in by_role.items()}
        ports = {role: [str(g.port) for g in members] for role, members in by_role.items()}
        argv = (
            "python3",
            PD_PROXY_SCRIPT,
            "--host",
            node.ip,
            "--port",
            str(r.port),
            "--prefiller-hosts",
            *hosts["prefill"],
            "--prefiller-ports",
            *ports["prefill"],
            "--decoder-hosts",
            *hosts["decode"],
            "--decoder-ports",
            *ports["decode"],
        )
        # The proxy runs from the image vllm runs from, and hands the backends the key it is given.
        key = groups[0].api_key
        image, role, check = node.image, PD_PROXY_ROLE, PD_PROXY_HEALTH
        env = (("OPENAI_API_KEY", key),) if key else ()
    container = Sidecar(
        role=role,
        node=node.name,
        name=f"{stack}-{role}",
        image=image,
        argv=argv,
        env=env,
        secret_env=frozenset(k for k, _ in env),
        mounts=(),
        uploads=(),
        labels=sidecar_labels(stack, node.name, role),
    )
    return RouterPlan(container, router_url(cfg), r.drain_timeout_seconds, rolls_out=False, check_path=check)
