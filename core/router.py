"""The router's plan: vllm-router on `router.node`, one worker per group (its head's API)."""

from __future__ import annotations

from dataclasses import dataclass

from .defaults import UNSPECIFIED_HOSTS
from .groups import router_node
from .models import ClusterConfig
from .plan import ClusterPlan, url_host
from .sidecar import Sidecar, sidecar_labels

ROUTER_ROLE = "router"
# 200 while one group at least serves (its /health turns 503 as soon as any group is down).
READINESS_PATH = "/readiness"


@dataclass(frozen=True)
class RouterPlan:
    container: Sidecar
    # Where the membership steps reach it, on its node's cluster address.
    url: str
    # How long a group leaving the router gets to finish its requests.
    drain_seconds: int


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
    argv = (
        "vllm-router",
        "--host",
        node.ip,
        "--port",
        str(r.port),
        "--worker-urls",
        *(worker_url(g) for g in groups),
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
    return RouterPlan(container, router_url(cfg), r.drain_timeout_seconds)
