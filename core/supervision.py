"""Group supervision in the plan: the files placed into every node's container and its entrypoint.

The container's command stays the `vllm serve` argv; the entrypoint in front of it is
supervision/supervisor.py (see its docstring for the design), which reads its node's settings
from a JSON file placed next to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from supervision.supervisor import SETTINGS_FILE

from .models import ClusterConfig

SUPERVISOR_DIR = str(Path(SETTINGS_FILE).parent)
SUPERVISOR_PATH = f"{SUPERVISOR_DIR}/supervisor.py"
SUPERVISOR_SOURCE = (Path(__file__).resolve().parent.parent / "supervision" / "supervisor.py").read_text()


@dataclass(frozen=True)
class Upload:
    """A file Docker places into the container when creating it."""

    path: str
    content: str
    executable: bool = False


def _url(ip: str, port: int) -> str:
    return f"http://[{ip}]:{port}" if ":" in ip else f"http://{ip}:{port}"


def supervisor_settings(cfg: ClusterConfig, index: int) -> dict:
    sup, node = cfg.supervision, cfg.nodes[index]
    return {
        "node": node.name,
        "bind": node.ip,
        "port": sup.metrics_port,
        "peers": {n.name: _url(n.ip, sup.metrics_port) for i, n in enumerate(cfg.nodes) if i != index},
        "head_url": _url(cfg.nodes[0].ip, cfg.serve.port),
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
    }


def supervisor_uploads(cfg: ClusterConfig, index: int) -> tuple[Upload, ...]:
    if not cfg.supervision.enabled:
        return ()
    settings = json.dumps(supervisor_settings(cfg, index), indent=1, sort_keys=True) + "\n"
    return (Upload(SUPERVISOR_PATH, SUPERVISOR_SOURCE, True), Upload(SETTINGS_FILE, settings, False))
