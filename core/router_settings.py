"""The `groups` and `router` sections: several data-parallel groups behind vllm-router.

A stack lists all its nodes under `nodes`, as always; `groups` splits them into data-parallel
groups, each a whole deployment of its own (checks, supervisors, fingerprint, verification), and
`router` is the vllm-router that spreads requests over the groups' heads, behind the front door.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from .defaults import DOCKER_HUB_MIRROR
from .images import pinned_image
from .section import Section

_GROUP_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?")
# vllm-router's policies that work with any number of groups (power_of_two refuses fewer than 2
# workers at start, and the kv-aware ones need events vllm-ascend does not publish).
ROUTER_POLICIES = ("round_robin", "cache_aware", "random", "consistent_hash")
# cache_aware tokenizes every request on every group first (/v1/completions/render, /tokenize),
# with the router's own --api-key: with apiKey set that key would sit on the router's command line.
CACHE_AWARE = "cache_aware"


class Group(Section):
    name: str
    # Names from `nodes`; the first is the group's head.
    nodes: list[str] = Field(min_length=1)
    # Prefill-decode disaggregation (core/pd.py): what the group serves; None serves both.
    role: Literal["prefill", "decode"] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _GROUP_NAME.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a valid group name; use 1-20 lowercase letters, digits and '-', starting and "
                "ending with a letter or digit"
            )
        return v


class Router(Section):
    # The node the router (and the front door before it) runs on; the first group's head by default.
    node: str | None = None
    # vllm-router from the vLLM project, pinned, through the same mirror host as the vllm image.
    image: str = f"{DOCKER_HUB_MIRROR}/vllm/vllm-router:v0.1.17"
    port: int = Field(default=30000, ge=1, le=65535)
    metrics_port: int = Field(default=29000, ge=1, le=65535)
    policy: str = "round_robin"
    # vllm-router's default of 60 s would route to a dead group for a minute.
    health_check_interval_seconds: int = Field(default=5, ge=1, le=60)
    # A group removed from the router before a replacement gets this long to finish its requests.
    drain_timeout_seconds: int = Field(default=600, ge=0)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return pinned_image(v)

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if v not in ROUTER_POLICIES:
            raise ValueError(
                f"{v!r} is not a router policy this deployment supports; use one of {', '.join(ROUTER_POLICIES)}"
            )
        return v
