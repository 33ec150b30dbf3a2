"""Everything one stack runs, planned from its config: the data-parallel group, the front door
clients reach it by, and the observability beside it. `pulumi up` (__main__.py) and the dry run (ops/render.py) read this one
plan, so the dry run shows every container the deployment would run."""

from __future__ import annotations

from dataclasses import dataclass

from .front_door import plan_front_door
from .models import ClusterConfig
from .observability import ObservabilityPlan, plan_observability
from .plan import ClusterPlan, plan_cluster
from .sidecar import Sidecar


@dataclass(frozen=True)
class Deployment:
    cluster: ClusterPlan
    # None when frontDoor.enabled is false: clients then reach vllm itself.
    front_door: Sidecar | None
    # Planned apart from the cluster: nothing observability sets can reach the vllm containers.
    observability: ObservabilityPlan | None


def plan_deployment(cfg: ClusterConfig, stack: str) -> Deployment:
    cluster = plan_cluster(cfg, stack)
    return Deployment(cluster, plan_front_door(cfg, cluster), plan_observability(cfg, cluster))
