"""The `observability` section: Prometheus, its alert thresholds, Grafana and npu-exporter.

Apart from models.py because none of it reaches the vllm containers (see observability.py).
"""

from __future__ import annotations

import ipaddress
import posixpath

from pydantic import Field, field_validator

from .defaults import DOCKER_HUB_MIRROR, PROJECT
from .images import names_registry, pinned_image, registry_problem
from .section import SHARED_ROOTS, Section, absolute_path, system_directory, system_tree

DATA_DIR_EXAMPLE = f"/var/lib/{PROJECT}/prometheus"
# The prom/prometheus image runs as nobody; its data directory on the host must be theirs.
PROMETHEUS_UID = 65534


def owned_dir_path(v: str, owner: str) -> str:
    """A directory that `pulumi up` creates and hands to `owner`: absolute, written plainly, and
    none of the host's own (that would hand the system to that user)."""
    v = absolute_path(v)
    parts = v.split("/")
    # absolute_path refuses these already; the denylist below must never be walked around.
    if any(part in (".", "..") for part in parts) or any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError(f"{v!r} is not a plain path; use one such as {DATA_DIR_EXAMPLE}")
    if posixpath.normpath(v) != v or v.startswith("//"):
        plain = "/" + "/".join(part for part in parts if part)
        raise ValueError(f"'{v}' has a repeated or trailing '/'; write it as {plain}")
    tree = system_tree(v)
    if system_directory(v):
        where = (
            f"is {'' if tree == v else 'inside '}{tree}, a host system tree"
            if tree
            else "is a host system directory (/, a top-level directory, or one directly under "
            + ", ".join(SHARED_ROOTS[:-1])
            + f" or {SHARED_ROOTS[-1]})"
        )
        raise ValueError(
            f"'{v}' {where}: pulumi up hands this directory to {owner}, who must own nothing of the host's; "
            f"use a directory of this deployment's own, such as {DATA_DIR_EXAMPLE}"
        )
    return v


def listen_address(v: str | None) -> str | None:
    """One address of the node to listen on: not every interface, not an IPv6 scope."""
    if v is None:
        return None
    try:
        address = ipaddress.ip_address(v)
    except ValueError:
        raise ValueError(
            f"'{v}' is not an IP address; use the observability node's own address (the default), "
            "a management address of that node, or 127.0.0.1"
        ) from None
    if "%" in v:
        raise ValueError(f"'{v}' has an IPv6 scope ID; use an address without '%'")
    if address.is_unspecified:
        raise ValueError(
            f"{v} listens on every interface of the node; use the observability node's own address "
            "(the default), a management address of that node, or 127.0.0.1"
        )
    return str(address)


class Prometheus(Section):
    image: str = "prom/prometheus:v2.53.4"
    port: int = Field(default=9090, ge=1, le=65535)
    # On the Prometheus node; bind-mounted so the series survive a replaced container.
    # Made Prometheus' (uid 65534) before it starts, so never a system directory: see owned_dir_path.
    data_dir: str = DATA_DIR_EXAMPLE
    # vllm's example stack scrapes every 5 s.
    scrape_interval_seconds: int = Field(default=5, ge=1, le=300)
    retention_days: int = Field(default=15, ge=1)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return pinned_image(v)

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, v: str) -> str:
        return owned_dir_path(v, f"Prometheus' user (uid {PROMETHEUS_UID})")


class Grafana(Section):
    enabled: bool = True
    image: str = "grafana/grafana:11.6.0"
    port: int = Field(default=3000, ge=1, le=65535)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return pinned_image(v)


class NpuExporter(Section):
    """MindCluster's npu-exporter on every node; no public image exists, so sites name their build."""

    image: str | None = None
    port: int = Field(default=8082, ge=1, le=65535)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        return pinned_image(v)


class Alerts(Section):
    """Thresholds of the alert rules; changing one never touches the vllm containers."""

    not_serving_minutes: int = Field(default=2, ge=1)
    restarts_per_hour: int = Field(default=2, ge=1)
    ttft_p99_seconds: float = Field(default=10, gt=0)
    inter_token_p99_seconds: float = Field(default=0.2, gt=0)
    latency_minutes: int = Field(default=5, ge=1)
    kv_cache_usage: float = Field(default=0.9, gt=0, le=1)
    queue_growing_minutes: int = Field(default=10, ge=1)
    npu_temperature_celsius: float = Field(default=85, gt=0)
    # vllm claims serve.gpuMemoryUtilization (0.92) of HBM at start, so "nearly full" is above it.
    npu_hbm_usage: float = Field(default=0.98, gt=0, le=1)
    # Longer than one group's rollout takes: the drain (router.drainTimeoutSeconds) and a weight load.
    group_out_of_router_minutes: int = Field(default=90, ge=1)


class Observability(Section):
    """Prometheus, its alert rules and Grafana on one node, scraping every node of the group."""

    enabled: bool = False
    # The node Prometheus and Grafana run on (a name from nodes); the head by default.
    node: str | None = None
    # Where Prometheus and Grafana listen on that node; its nodes[].ip by default. npu-exporter
    # listens on each node's nodes[].ip, where Prometheus scrapes it.
    listen_address: str | None = None
    registry: str = DOCKER_HUB_MIRROR
    prometheus: Prometheus = Prometheus()
    grafana: Grafana = Grafana()
    npu_exporter: NpuExporter = NpuExporter()
    alerts: Alerts = Alerts()

    @field_validator("listen_address")
    @classmethod
    def _listen_address(cls, v: str | None) -> str | None:
        return listen_address(v)

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str) -> str:
        problem = registry_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    def image_ref(self, image: str) -> str:
        """Images Docker would pull from Docker Hub come through the registry (the vllm mirror's host)."""
        if not self.registry or names_registry(image):
            return image
        return f"{self.registry}/{image}"
