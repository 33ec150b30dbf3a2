"""The `pd` section: prefill-decode disaggregation's per-role sizes and its KV ports.

The defaults are vllm-ascend's 2P1D recipe for DeepSeek-R1-W8A8 on four Atlas 800 A3 nodes
(docs/source/tutorials/models/DeepSeek-V3.1.md, pd_disaggregation_mooncake_multi_node.md): a
prefill instance is one node at DP2 x TP8, the decode instance two nodes at DP32 x TP1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .section import Section

# The front doors that speak the prefill-then-decode protocol: the proxy in the vllm-ascend image
# (the recipe's and vllm-ascend's CI's), or vllm-router's PD mode (not validated on Ascend).
PD_PROXIES = ("vllm-ascend-proxy", "vllm-router")


class PrefillSizes(Section):
    data_parallel_size: int = Field(default=2, ge=1)
    tensor_parallel_size: int = Field(default=8, ge=1)
    max_num_seqs: int = Field(default=8, ge=1)
    max_num_batched_tokens: int = Field(default=16384, ge=1)


class DecodeSizes(Section):
    data_parallel_size: int = Field(default=32, ge=1)
    tensor_parallel_size: int = Field(default=1, ge=1)
    max_num_seqs: int = Field(default=28, ge=1)
    max_num_batched_tokens: int = Field(default=256, ge=1)


class Disaggregation(Section):
    prefill: PrefillSizes = PrefillSizes()
    decode: DecodeSizes = DecodeSizes()
    proxy: Literal["vllm-ascend-proxy", "vllm-router"] = "vllm-ascend-proxy"
    # The first KV port; each instance takes data-parallel x tensor-parallel ports from there on.
    # None: the first port above Mooncake's own random range for the profile (ours, see pd.py).
    kv_port_base: int | None = Field(default=None, ge=1024, le=65535)
