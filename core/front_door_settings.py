"""The `frontDoor` section: the proxy that is the API's only public listener.

vllm checks its API key on /v1 paths only; /invocations and its other routes serve the model to
anyone who reaches them (vllm's security guide). So clients reach a proxy that passes /v1 (and
/health) on, checks the key itself, and refuses everything else, while vllm listens on the head's
cluster address, where the supervisors and Prometheus reach /health and /metrics.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from .defaults import DOCKER_HUB_MIRROR
from .images import pinned_image
from .section import Section, ip_address


class FrontDoor(Section):
    enabled: bool = True
    # HAProxy, a maintained LTS branch, pinned; Docker Hub's official image through the mirror.
    image: str = f"{DOCKER_HUB_MIRROR}/library/haproxy:2.6.22"
    # The public side of the head node: every interface by default, or one address (a public NIC
    # apart from the cluster network).
    listen_address: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    # How often the proxy asks vllm's /health; a failed group answers 503 at once instead of hanging.
    health_interval_seconds: int = Field(default=2, ge=1, le=60)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return pinned_image(v)

    @field_validator("listen_address")
    @classmethod
    def _listen_address(cls, v: str) -> str:
        return ip_address(v, "use 0.0.0.0 (every interface) or one address of the head node")
