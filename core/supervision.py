"""Group supervision in the plan: the files placed into every node's container and its entrypoint.

The container's command stays the `vllm serve` argv; the entrypoint in front of it is the
supervisor (supervision/supervisor.py, see its docstring for the design): the package
`supervision` and its launcher are placed into the container, with the node's settings as a
JSON file beside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from supervision.protocol import SETTINGS_FILE

from .defaults import UNSPECIFIED_HOSTS
from .models import ClusterConfig
from .pd import transfers_kv

# The addresses on which vllm listens on every interface.

SUPERVISOR_DIR = str(Path(SETTINGS_FILE).parent)
# The launcher (the package's __main__.py) is the entrypoint; the package sits beside it (a
# namespace package: it needs no __init__.py).
SUPERVISOR_PATH = f"{SUPERVISOR_DIR}/supervise"
_PACKAGE = Path(__file__).resolve().parent.parent / "supervision"
SUPERVISOR_FILES = {
    SUPERVISOR_PATH: (_PACKAGE / "__main__.py").read_text(),
    **{
        f"{SUPERVISOR_DIR}/supervision/{name}": (_PACKAGE / name).read_text()
        for name in ("protocol.py", "supervisor.py")
    },
}


@dataclass(frozen=True)
class Upload:
    """A file Docker places into the container when creating it."""

    path: str
    content: str
    executable: bool = False


def _url(ip: str, port: int) -> str:
    return f"http://[{ip}]:{port}" if ":" in ip else f"http://{ip}:{port}"


def local_api_host(serve_host: str) -> str:
    """Where vllm's API answers on its own host: loopback when it listens on every address."""
    return "127.0.0.1" if serve_host in UNSPECIFIED_HOSTS else serve_host


def supervisor_settings(cfg: ClusterConfig, index: int, group: str) -> dict:
    sup, node = cfg.supervision, cfg.nodes[index]
    # The head's supervisor watches vllm where it listens; the others at the head's address,
    # which rules.py makes sure vllm listens on when there are others.
    head = local_api_host(cfg.api_host) if index == 0 else cfg.nodes[0].ip
    return {
        "node": node.name,
        "bind": node.ip,
        "port": sup.metrics_port,
        "peers": {n.name: _url(n.ip, sup.metrics_port) for i, n in enumerate(cfg.nodes) if i != index},
        "head_url": _url(head, cfg.serve.port),
        "group": group,
        "served_model_name": cfg.model.served_name,
        "group_epoch": sup.group_epoch,
        "start_grace_seconds": sup.start_grace_seconds,
        "unhealthy_seconds": sup.unhealthy_seconds,
        "stall_seconds": sup.stall_seconds,
        "backoff_seconds": sup.backoff_seconds,
        "max_backoff_seconds": sup.max_backoff_seconds,
        "max_restarts": sup.max_restarts,
        "stop_timeout_seconds": sup.stop_timeout_seconds,
        "barrier_timeout_seconds": sup.barrier_timeout_seconds,
        "poll_seconds": sup.poll_seconds,
        # In the container's own layer: it survives a container restart, not a replacement.
        "state_file": f"{SUPERVISOR_DIR}/state.json",
        # A prefill or decode instance runs Mooncake, which needs the image's shell additions.
        "interactive_env": transfers_kv(cfg),
    }


def supervisor_stop_seconds(cfg: ClusterConfig) -> int | None:
    """How long the supervisor needs to stop vllm: SIGTERM, stopTimeoutSeconds, then SIGKILL to
    the whole process group and the reaping, with a margin."""
    return cfg.supervision.stop_timeout_seconds + 10 if cfg.supervision.enabled else None


def supervisor_uploads(cfg: ClusterConfig, index: int, group: str) -> tuple[Upload, ...]:
    """`group` is the group's fingerprint, taken over every node planned with an empty one: it
    cannot hash itself, and it already covers everything else these files hold."""
    if not cfg.supervision.enabled:
        return ()
    settings = json.dumps(supervisor_settings(cfg, index, group), indent=1, sort_keys=True) + "\n"
    code = tuple(Upload(path, content, path == SUPERVISOR_PATH) for path, content in SUPERVISOR_FILES.items())
    return (*code, Upload(SETTINGS_FILE, settings, False))
