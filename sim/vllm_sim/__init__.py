"""vllm-sim: a stdlib-only stand-in for the ``vllm`` CLI (vllm-ascend).

Only for tests and a local simulated cluster; never used in real deployments.
It keeps the contracts the deployment relies on: the ``vllm serve`` flags (parsed
with the table of vllm's own parser, core/vllm_flags_*.json),
the start-up checks for Ascend NPU devices and HCCL network settings, the
data-parallel handshake between a head and headless nodes, the
OpenAI-compatible HTTP API with /health and /metrics, and ``vllm bench serve``.
"""

import os

from core.vllm_args import DEFAULT_VERSION, load_table

# The vllm release whose `vllm serve` command line the simulator reads, flag for flag: the one it
# is told (VLLM_SIM_VLLM_VERSION, the stack's image.vllmVersion), else the default image's.
try:
    TABLE = load_table(os.environ.get("VLLM_SIM_VLLM_VERSION") or DEFAULT_VERSION)
except ValueError as e:
    raise SystemExit(f"vllm-sim: ERROR: VLLM_SIM_VLLM_VERSION: {e}") from None
__version__ = TABLE.version
