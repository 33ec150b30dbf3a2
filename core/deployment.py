"""Everything one stack runs, planned from its config: its data-parallel groups (one, or several
behind the router), the front door clients reach them by, and the observability beside them.
`pulumi up` (__main__.py) and the dry run (ops/render.py) read this one plan, so the dry run shows
every container the deployment would run."""

from __future__ import annotations

from dataclasses import dataclass

from .front_door import HEALTH_PATH, plan_front_door
from .groups import group_configs
from .models import Benchmark, ClusterConfig
from .observability import ObservabilityPlan, plan_observability
from .pd import instances
from .plan import ClusterPlan, client_url, plan_cluster, url_host
from .router import RouterPlan, plan_router
from .sidecar import Sidecar


@dataclass(frozen=True)
class Deployment:
    groups: tuple[ClusterPlan, ...]
    # Several groups: vllm-router on router.node, the front door's backend.
    router: RouterPlan | None
    # None when frontDoor.enabled is false: clients then reach vllm itself.
    front_door: Sidecar | None
    # Planned apart from the groups: nothing observability sets can reach the vllm containers.
    observability: ObservabilityPlan | None
    # What clients use, the `endpoint` output; and the same service as its own node reaches it.
    endpoint: str
    local_url: str
    # Several groups: the one benchmark, through the front door (each group runs none of its own).
    benchmark: Benchmark

    @property
    def cluster(self) -> ClusterPlan:
        """The stack's one group (the first of several)."""
        return self.groups[0]

    @property
    def sidecars(self) -> tuple[Sidecar, ...]:
        """Every container beside the groups' vllm servers."""
        extra = [c for c in (self.router and self.router.container, self.front_door) if c is not None]
        return (*extra, *(self.observability.containers if self.observability else ()))


def plan_deployment(cfg: ClusterConfig, stack: str) -> Deployment:
    kv = {i.group: i for i in instances(cfg)}
    groups = tuple(
        plan_cluster(group_cfg, stack, group=name, kv=kv.get(name)) for name, group_cfg in group_configs(cfg)
    )
    router = plan_router(cfg, stack, groups)
    if router is None:
        # The front door sits beside the head and passes on to its vllm.
        door_node, endpoint, local = groups[0].head, groups[0].endpoint, groups[0].client_local_url
        backend = f"{url_host(groups[0].listen_host)}:{groups[0].port}"
    else:
        # Beside the router, on its node, passing on to it.
        door_node = next(n for g in groups for n in g.nodes if n.name == router.container.node)
        backend = f"{url_host(door_node.ip)}:{cfg.router.port}"
        endpoint = client_url(cfg, door_node.ip, door=True) + "/v1"
        local = client_url(cfg, None, door=True)
    check = HEALTH_PATH if router is None else router.check_path
    front_door = plan_front_door(cfg, groups[0], door_node, backend, check)
    observability = plan_observability(cfg, groups, router)
    return Deployment(groups, router, front_door, observability, endpoint, local, cfg.benchmark)
