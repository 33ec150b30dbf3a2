"""vllm serve flags: which ones the config models, which the plan derives, and what extraArgs may add."""

from __future__ import annotations

from .models import ClusterConfig, camel_path

# The tutorial's model flags in its order, each with the setting it comes from. Booleans are
# switches (present when true); None leaves a flag out.
MODEL_FLAGS = (
    ("--tensor-parallel-size", "serve.tensor_parallel_size"),
    ("--quantization", "serve.quantization"),
    ("--seed", "serve.seed"),
    ("--served-model-name", "model.served_name"),
    ("--enable-expert-parallel", "serve.enable_expert_parallel"),
    ("--async-scheduling", "serve.async_scheduling"),
    ("--max-num-seqs", "serve.max_num_seqs"),
    ("--max-model-len", "serve.max_model_len"),
    ("--max-num-batched-tokens", "serve.max_num_batched_tokens"),
    ("--trust-remote-code", "serve.trust_remote_code"),
    ("--gpu-memory-utilization", "serve.gpu_memory_utilization"),
    ("--speculative-config", "serve.speculative_config"),
    ("--compilation-config", "serve.compilation_config"),
)
# Flags the plan sets from topology, roles and secrets, never through extraArgs.
DERIVED_FLAGS = {
    "--host": "serve.host",
    "--port": "serve.port",
    "--headless": "nodes (node 0 is the head, the others are headless)",
    "--data-parallel-size": "serve.dataParallelSize",
    "--data-parallel-size-local": "serve.dataParallelSize divided by the number of nodes",
    "--data-parallel-start-rank": "each node's position in nodes",
    "--data-parallel-address": "nodes[0].ip",
    "--data-parallel-rpc-port": "serve.dataParallelRpcPort",
    "--enable-prefix-caching": "serve.enablePrefixCaching",
    "--no-enable-prefix-caching": "serve.enablePrefixCaching",
    "--api-key": "apiKey (a secret)",
    # vllm's short aliases of the same flags.
    "-tp": "serve.tensorParallelSize",
    "-dp": "serve.dataParallelSize",
    "-dpl": "serve.dataParallelSize divided by the number of nodes",
    "-dpr": "each node's position in nodes",
    "-dpa": "nodes[0].ip",
    "-dpp": "serve.dataParallelRpcPort",
    # Every NPU holds one tensor x data parallel rank here; pipeline stages would break that.
    "--pipeline-parallel-size": "nothing: pipeline parallelism is not supported (tensor x data parallel covers every NPU)",
    "-pp": "nothing: pipeline parallelism is not supported (tensor x data parallel covers every NPU)",
}


def _flag_keys() -> dict[str, str]:
    return {**DERIVED_FLAGS, **{flag: camel_path(*path.split(".")) for flag, path in MODEL_FLAGS}}


def extra_args_problems(cfg: ClusterConfig) -> list[str]:
    """serve.extraArgs items that would override a modelled or derived flag."""
    problems = []
    flag_keys = _flag_keys()
    for i, arg in enumerate(cfg.serve.extra_args):
        flag = arg.split("=", 1)[0]
        if flag in flag_keys:
            problems.append(f"serve.extraArgs[{i}]: '{flag}' is set from {flag_keys[flag]}; set it there")
    return problems
