"""The `observability` section: Prometheus, its alert thresholds, Grafana and npu-exporter.

Apart from models.py because none of it reaches the vllm containers (see observability.py).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from .defaults import PROJECT
from .images import image_reference_problem, names_registry, registry_problem
from .section import Section, absolute_path


def _pinned_image(v: str | None) -> str | None:
    problem = image_reference_problem(v) if v is not None else None
    if problem:
        raise ValueError(problem)
    return v


class Prometheus(Section):
    image: str = "prom/prometheus:v2.53.4"
    port: int = Field(default=9090, ge=1, le=65535)
    # On the Prometheus node; bind-mounted so the series survive a replaced container.
    data_dir: str = f"/var/lib/{PROJECT}/prometheus"
    # vllm's example stack scrapes every 5 s.
    scrape_interval_seconds: int = Field(default=5, ge=1, le=300)
    retention_days: int = Field(default=15, ge=1)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return _pinned_image(v)

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, v: str) -> str:
        return absolute_path(v)


class Grafana(Section):
    enabled: bool = True
    image: str = "grafana/grafana:11.6.0"
    port: int = Field(default=3000, ge=1, le=65535)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return _pinned_image(v)


class NpuExporter(Section):
    """MindCluster's npu-exporter on every node; no public image exists, so sites name their build."""

    image: str | None = None
    port: int = Field(default=8082, ge=1, le=65535)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        return _pinned_image(v)


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


class Observability(Section):
    """Prometheus, its alert rules and Grafana on one node, scraping every node of the group."""

    enabled: bool = False
    # The node Prometheus and Grafana run on (a name from nodes); the head by default.
    node: str | None = None
    registry: str = "m.daocloud.io/docker.io"
    prometheus: Prometheus = Prometheus()
    grafana: Grafana = Grafana()
    npu_exporter: NpuExporter = NpuExporter()
    alerts: Alerts = Alerts()

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
