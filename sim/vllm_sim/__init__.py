"""vllm-sim: a stdlib-only stand-in for the ``vllm`` CLI (vllm-ascend).

Only for tests and a local simulated cluster; never used in real deployments.
It keeps the contracts the deployment relies on: the ``vllm serve`` flags (parsed
with the table of vllm's own parser, core/vllm_flags_*.json),
the start-up checks for Ascend NPU devices and HCCL network settings, the
data-parallel handshake between a head and headless nodes, the
OpenAI-compatible HTTP API with /health and /metrics, and ``vllm bench serve``.
"""

from core.vllm_args import load_table

# The vllm release whose `vllm serve` command line the simulator reads, flag for flag.
__version__ = load_table().version
