"""vllm serve flags: which ones the config models, which the plan derives, and what extraArgs may add.

serve.extraArgs is read the way vllm 0.18.0's parser reads it (vllm_args.py), so a spelling vllm
accepts cannot slip past these rules, and one it refuses is refused here.
"""

from __future__ import annotations

import difflib

from . import vllm_args
from .models import ClusterConfig, camel_path

# The tutorial's model flags in its order, each with the setting it comes from. A boolean
# renders --X when true and --no-X when false (vllm's own default may differ from ours: 0.18
# turns async scheduling on by itself); None leaves a flag out.
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
    "--model": "model.name",
    "--host": "serve.host",
    "--port": "serve.port",
    "--headless": "nodes (node 0 is the head, the others are headless)",
    "--data-parallel-size": "serve.dataParallelSize",
    "--data-parallel-size-local": "serve.dataParallelSize divided by the number of nodes",
    "--data-parallel-start-rank": "each node's position in nodes",
    "--data-parallel-address": "nodes[0].ip",
    "--data-parallel-rpc-port": "serve.dataParallelRpcPort",
    "--enable-prefix-caching": "serve.enablePrefixCaching",
    "--api-key": "apiKey (a secret)",
}
# Flags no stack may set, each with why: they contradict the layout the plan derives.
LAYOUT_CONFLICTS = {
    # Every NPU holds one tensor x data parallel rank here; pipeline stages would break that.
    "--pipeline-parallel-size": "pipeline parallelism is not supported (tensor x data parallel covers every NPU)",
    "--data-parallel-rank": "each node runs its ranks from --data-parallel-start-rank; one fixed rank on every "
    "node would start them all as the same rank",
    "--nnodes": "vllm's torchrun-style multi-node launch conflicts with the data-parallel group the nodes form",
    "--node-rank": "vllm's torchrun-style multi-node launch conflicts with the data-parallel group the nodes form",
    "--config": "it reads flags from a file inside the container, which validation cannot check; list them here",
    "--help": "vllm prints its help and exits instead of serving",
    "--data-parallel-backend": "the nodes form their data-parallel group with vllm's own multiprocessing backend; "
    "another backend (ray) needs a cluster this deployment does not run",
    "--data-parallel-external-lb": "the head serves the API for the whole group; an external load balancer would "
    "need an API server on every node",
    "--data-parallel-hybrid-lb": "the head serves the API for the whole group; hybrid load balancing would start "
    "an API server on every node",
    "--uds": "the API would listen on a Unix socket instead of serve.host:serve.port, where readiness, the smoke "
    "test and clients reach it",
}
# Refused only where some node is headless (vllm refuses more than one API server there).
HEADLESS_CONFLICTS = {
    "--api-server-count": "headless nodes run no API server, and vllm refuses --api-server-count beside --headless",
}


def _flag_keys() -> dict[str, str]:
    return {**DERIVED_FLAGS, **{flag: camel_path(*path.split(".")) for flag, path in MODEL_FLAGS}}


def extra_args_problems(cfg: ClusterConfig) -> list[str]:
    """serve.extraArgs items vllm would refuse, or that override a modelled or derived flag."""
    table = vllm_args.load_table()
    problems = []
    for given in vllm_args.read(cfg.serve.extra_args, table):
        problem = _refused(given, table) if given.error else _conflict(given, len(cfg.nodes) > 1)
        if problem:
            problems.append(f"serve.extraArgs[{given.index}]: {problem}")
    return problems


def _refused(given: vllm_args.Given, table: vllm_args.Table) -> str:
    text, words = given.text, given.text.split()
    if len(words) > 1 and given.option is None and words[0].startswith("-"):
        items = ", ".join(f"'{w}'" for w in words)
        return f"'{text}' holds a flag and its value in one item, which vllm takes as one unknown word; write it as the items {items}"
    refusal = f"vllm {table.version} refuses '{text}': {given.error}"
    if given.error.startswith("unrecognized arguments"):
        name = text.split("=", 1)[0]
        close = difflib.get_close_matches(vllm_args.normalise(name), list(table.options), n=1, cutoff=0.6)
        return refusal + (f"; did you mean '{close[0]}'?" if close else "; see `vllm serve --help=all`")
    if given.error.startswith("ambiguous option"):
        return refusal + "; write the whole flag"
    return refusal


def _conflict(given: vllm_args.Given, multi_node: bool) -> str | None:
    flag = given.option.flag
    keys = _flag_keys()
    read_as, written = given.option.option, given.text.split("=", 1)[0]
    if given.dotted is not None:
        written = written.split(".", 1)[0]
    named = f"'{given.text}'" if written in (read_as, flag.name) else f"'{given.text}' (vllm reads {read_as})"
    if given.dotted is not None and flag.name in keys:
        return (
            f"{named} replaces the whole {flag.name} value, which is set from {keys[flag.name]}; "
            f"set {given.dotted} there"
        )
    if flag.name in keys:
        if given.option.negated:
            return f"{named} turns off {flag.name}, which is set from {keys[flag.name]}; set it to false there"
        return f"{named} sets {flag.name}, which is set from {keys[flag.name]}; set it there"
    if given.option.negated:
        # Turning a conflicting switch off restates vllm's default.
        return None
    reason = LAYOUT_CONFLICTS.get(flag.name) or (HEADLESS_CONFLICTS.get(flag.name) if multi_node else None)
    return f"{named} conflicts with this deployment's layout: {reason}" if reason else None
