"""The containers that run beside the model on a node: the front door, Prometheus, Grafana and
npu-exporter. Each is planned as one plain record; none takes part in the group's fingerprint, so
replacing one (a new dashboard, a new proxy rule) never restarts the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .plan import NODE_LABEL, ROLE_LABEL, STACK_LABEL, Device, Mount
from .supervision import Upload

SidecarRole = Literal["front-door", "router", "pd-proxy", "prometheus", "grafana", "npu-exporter"]
# They keep running across reboots, and stay stopped when an operator stops them.
SIDECAR_RESTART = "unless-stopped"


@dataclass(frozen=True)
class Sidecar:
    role: SidecarRole
    node: str
    name: str
    image: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    secret_env: frozenset[str]
    mounts: tuple[Mount, ...]
    uploads: tuple[Upload, ...]
    labels: tuple[tuple[str, str], ...]
    # Only npu-exporter: it reads the NPUs through the driver's management devices.
    devices: tuple[Device, ...] = ()


def sidecar_labels(stack: str, node: str, role: SidecarRole) -> tuple[tuple[str, str], ...]:
    return ((STACK_LABEL, stack), (NODE_LABEL, node), (ROLE_LABEL, role))
