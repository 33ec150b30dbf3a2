"""The front door's plan: HAProxy on the head node, the API's only public listener.

It passes /v1 paths (where vllm checks the key too) and /health on to vllm at the head's cluster
address, checks the API key itself when there is one, and answers every other route (vllm's
/invocations, /pooling, /tokenize, /metrics ...) with 404: those serve without a key in vllm.
"""

from __future__ import annotations

from .config import SECRET_ENV
from .models import ClusterConfig
from .plan import ClusterPlan, NodePlan, url_host
from .sidecar import Sidecar, sidecar_labels
from .supervision import Upload

FRONT_DOOR_ROLE = "front-door"
# Where the official image reads its configuration; the local image keeps the same path.
CONFIG_FILE = "/usr/local/etc/haproxy/haproxy.cfg"
API_KEY_ENV = SECRET_ENV["apiKey"]
# Paths the front door passes on: the OpenAI API and the health probe, nothing else.
PASSED_PREFIX = "/v1/"
HEALTH_PATH = "/health"


def haproxy_config(
    listen: str, port: int, backend: str, check_path: str, health_interval_seconds: int, with_key: bool
) -> str:
    """The proxy's whole configuration. The key stays out of it: HAProxy reads it from the
    container's environment when it parses the file, so the file is no secret."""
    key_check = (
        # A /v1 request without the exact bearer key is refused here, before vllm sees it.
        f'    http-request return status 401 content-type text/plain string "missing or wrong API key\\n" '
        f'if {{ path_beg {PASSED_PREFIX} }} !{{ req.hdr(authorization) -m str "Bearer ${{{API_KEY_ENV}}}" }}\n'
        if with_key
        else ""
    )
    return (
        "global\n"
        "    log stdout format raw local0\n"
        "    maxconn 4096\n"
        "\n"
        "defaults\n"
        "    mode http\n"
        "    log global\n"
        "    option httplog\n"
        "    timeout connect 5s\n"
        "    timeout http-request 30s\n"
        # A long generation streams for minutes; an idle connection is dropped after an hour.
        "    timeout client 1h\n"
        "    timeout server 1h\n"
        "\n"
        "frontend api\n"
        f"    bind {url_host(listen)}:{port}\n"
        # Dot segments, doubled slashes and escapes never name a route vllm serves: refuse them
        # rather than guess how vllm would read them.
        '    http-request return status 400 content-type text/plain string "unsupported path\\n" '
        "if { path_sub /. // % }\n"
        '    http-request return status 404 content-type text/plain string "not found\\n" '
        f"unless {{ path_beg {PASSED_PREFIX} }} || {{ path {HEALTH_PATH} }}\n"
        f"{key_check}"
        "    default_backend vllm\n"
        "\n"
        "backend vllm\n"
        f"    option httpchk GET {check_path}\n"
        f"    server backend {backend} check inter {health_interval_seconds}s\n"
    )


def plan_front_door(
    cfg: ClusterConfig, plan: ClusterPlan, node: NodePlan, backend: str, check_path: str = HEALTH_PATH
) -> Sidecar | None:
    """The front door on `node`, passing on to `backend` (host:port): the head's vllm, or the router,
    judged healthy by `check_path`."""
    fd = cfg.front_door
    if not fd.enabled:
        return None
    with_key = plan.api_key is not None
    config = haproxy_config(fd.listen_address, fd.port, backend, check_path, fd.health_interval_seconds, with_key)
    return Sidecar(
        role=FRONT_DOOR_ROLE,
        node=node.name,
        name=f"{node.container_name}-front-door",
        image=fd.image,
        argv=("haproxy", "-f", CONFIG_FILE),
        env=((API_KEY_ENV, plan.api_key),) if with_key else (),
        secret_env=frozenset({API_KEY_ENV}) if with_key else frozenset(),
        mounts=(),
        uploads=(Upload(CONFIG_FILE, config),),
        labels=sidecar_labels(plan.stack, node.name, FRONT_DOOR_ROLE),
    )
