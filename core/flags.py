"""vllm serve flags: which ones the config models, which the plan derives, and what extraArgs may add.

serve.extraArgs is read the way the parser of the image's vllm reads it (vllm_args.py, with the
table of that vllm's flags: Image.vllm), so a spelling vllm accepts cannot slip past these rules,
and one it refuses is refused here. A credential flag is
refused there always, even when `serve` is a Pulumi secret: the container's command line is read
by every local user of the node (`ps`, `docker inspect`), whatever Pulumi encrypts. No message
quotes a credential given there: validation reads the items with those values already hidden.
"""

from __future__ import annotations

import difflib

from . import vllm_args
from .defaults import SECRET_ENV
from .models import ClusterConfig, camel_path, to_snake

# The tutorial's model flags in its order, each with the setting it comes from. A boolean
# renders --X when true and --no-X when false (vllm's own default may differ from ours: 0.13
# leaves async scheduling off, 0.18 and later turn it on by themselves); None leaves a flag out.
# Each has the same name, value form and meaning in every supported vllm (tests/test_vllm_versions.py).
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
    # vllm 0.23 and later.
    "--data-parallel-multi-port-external-lb": "the head serves the API for the whole group; the multi-port mode "
    "would start an API server per data-parallel rank behind vllm's own supervisor",
}
# Flags that set one key of a modelled JSON flag (vllm 0.23 and later): vllm refuses one beside the
# same key in that flag's JSON, and adds any other key to it.
KEY_FLAGS = {
    "--spec-method": ("--speculative-config", "method"),
    "--spec-model": ("--speculative-config", "model"),
    "--spec-tokens": ("--speculative-config", "num_speculative_tokens"),
}
# vllm 0.23's --quantization-config refines only these --quantization values (its online, load-time
# quantizations); beside any other, such as the W8A8 checkpoint's `ascend`, vllm refuses to start.
ONLINE_QUANTIZATIONS = ("fp8_per_tensor", "fp8_per_block", "mxfp8", "int8_per_channel_weight_only", "online")
# Refused only where some node is headless (vllm refuses more than one API server there).
HEADLESS_CONFLICTS = {
    "--api-server-count": "headless nodes run no API server, and vllm refuses --api-server-count beside --headless",
}


# A flag takes a credential when vllm reads its value as text and a whole word of its name says so:
# in vllm 0.18.0 --api-key (the API's bearer keys) and --hf-token (the Hugging Face Hub token). A
# word inside another (--ssl-keyfile, a path; --tokenizer) or a number (--max-num-batched-tokens,
# --long-prefill-token-threshold) is no credential, hence whole words and the value's kind.
_CREDENTIAL_WORDS = frozenset({"key", "token", "secret", "password"})
_TEXT_KINDS = frozenset({"str", "json-or-str"})
# The secret that replaces each credential flag: apiKey for --api-key, hfToken for --hf-token. The
# program hands it to the containers as the variable vllm reads instead (SECRET_ENV).
SECRET_FOR_FLAG = {f"--{to_snake(key).replace('_', '-')}": key for key in SECRET_ENV}
HIDDEN = "<hidden>"


def is_credential(flag: vllm_args.Flag) -> bool:
    return flag.kind in _TEXT_KINDS and not _CREDENTIAL_WORDS.isdisjoint(flag.name[2:].split("-"))


def names_credential(arg: str, table: vllm_args.Table) -> bool:
    """Whether an option argument as written (`--hf_tok`, `--api-key=...`) names a credential flag."""
    flag = _flag(arg, table)
    return flag is not None and is_credential(flag)


def _flag(arg: str, table: vllm_args.Table) -> vllm_args.Flag | None:
    """The flag an option argument names in a spelling vllm accepts; None for a value or a refused option."""
    name = vllm_args.normalise(arg)
    key = vllm_args.dotted_key(name)
    try:
        option = vllm_args.resolve(key[0] if key else name, table)
    except vllm_args.ArgError:
        return None
    return option.flag if option else None


def hide_credentials(args: list[str], table: vllm_args.Table) -> list[str]:
    """`args` with every value that may be a credential as <hidden>: the values of a credential flag
    in any spelling vllm reads (`--hf-token X`, `--hf_tok=X`, `--api-key K1 K2`, `--hf-token.a=X`),
    the stray values after them, and the values of an option vllm refuses as unknown or ambiguous
    (which flag `--hf-tokn=X` or `--api=X` meant, and so whether X is a token, cannot be told);
    also inside one item that holds several words (`'--hf-token X'`). Nothing else changes, so the
    items read the same way."""
    givens = vllm_args.read(args, table)
    shown: list[str] = []
    after_credential = False
    for n, given in enumerate(givens):
        option, text = given.option, given.text
        stray = option is None and not text.startswith("-")  # a value no option took
        refused = option is None and not stray
        credential = option is not None and is_credential(option.flag)
        if stray:
            shown.append((text and HIDDEN) if after_credential else _words_hidden(text, table))
        elif credential or (refused and len(text.split()) == 1):
            name, sep, value = text.partition("=")
            shown.append(f"{name}={HIDDEN}" if sep and value else text)
        else:
            shown.append(_words_hidden(text, table))
        after_credential = credential or (after_credential and stray)
        # The arguments the option took as its values, or, for a refused option, skipped with it.
        values = args[given.index + 1 : givens[n + 1].index if n + 1 < len(givens) else len(args)]
        shown += [(v and HIDDEN) if credential or refused else _words_hidden(v, table) for v in values]
    return shown


def _words_hidden(text: str, table: vllm_args.Table) -> str:
    """An item of several words read as a command line of its own, so a credential inside it is hidden too."""
    words = text.split()
    hidden = hide_credentials(words, table) if len(words) > 1 else words
    return " ".join(hidden) if hidden != words else text


def _flag_keys() -> dict[str, str]:
    return {**DERIVED_FLAGS, **{flag: camel_path(*path.split(".")) for flag, path in MODEL_FLAGS}}


def extra_args_problems(cfg: ClusterConfig, secret_keys: frozenset[str] = frozenset()) -> list[str]:
    """serve.extraArgs items vllm would refuse, that override a modelled or derived flag, or that
    put a credential on the command line (`serve` being a Pulumi secret or not: `secret_keys`
    changes nothing here, errors.py hides the messages of a secret `serve`)."""
    table = vllm_args.load_table(cfg.image.vllm)
    problems = []
    for given in vllm_args.read(hide_credentials(cfg.serve.extra_args, table), table):
        problem = _credential(given, table)
        problem = problem or (_refused(given, table) if given.error else _conflict(given, cfg))
        if problem:
            problems.append(f"serve.extraArgs[{given.index}]: {problem}")
    return problems


def _credential(given: vllm_args.Given, table: vllm_args.Table) -> str | None:
    """A credential flag given a value: as two items, as `--flag=value`, or as one item `'--flag value'`."""
    if given.option is not None:
        flag, passed = given.option.flag, any(given.values)
    else:
        first, *rest = given.text.split() or [""]
        flag, passed = _flag(first, table), bool(rest)
    if flag is None or not passed or not is_credential(flag):
        return None
    key = SECRET_FOR_FLAG.get(flag.name)
    instead = (
        f"set `pulumi config set --secret {key} <value>`: the containers get it as {SECRET_ENV[key]}, which vllm "
        f"reads like {flag.name}"
        if key
        else "put the variable vllm reads it from in env.extra, set with `pulumi config set --secret`"
    )
    return (
        f"{_named(given)} puts a credential on vllm's command line, which every user of the node reads "
        f"(`ps`, `docker inspect`), even when serve is a secret; remove it and {instead}"
    )


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


def _named(given: vllm_args.Given) -> str:
    """The item as written, and the option vllm reads it as when that is spelled otherwise."""
    if given.option is None:
        return f"'{given.text}'"
    read_as, written = given.option.option, given.text.split("=", 1)[0]
    if given.dotted is not None:
        written = written.split(".", 1)[0]
    return (
        f"'{given.text}'" if written in (read_as, given.option.flag.name) else f"'{given.text}' (vllm reads {read_as})"
    )


def _conflict(given: vllm_args.Given, cfg: ClusterConfig) -> str | None:
    flag = given.option.flag
    keys = _flag_keys()
    named = _named(given)
    if flag.name in KEY_FLAGS:
        whole, key = KEY_FLAGS[flag.name]
        return f"{named} sets {key} of {whole}, which is set from {keys[whole]}; set {key} there"
    quantization = cfg.serve.quantization
    if flag.name == "--quantization-config" and quantization not in ONLINE_QUANTIZATIONS:
        return (
            f"{named} refines --quantization, which vllm {cfg.image.vllm} refuses beside serve.quantization "
            f"'{quantization}'; remove it, or use it with serve.quantization one of {', '.join(ONLINE_QUANTIZATIONS)}"
        )
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
    multi_node = len(cfg.nodes) > 1
    reason = LAYOUT_CONFLICTS.get(flag.name) or (HEADLESS_CONFLICTS.get(flag.name) if multi_node else None)
    return f"{named} conflicts with this deployment's layout: {reason}" if reason else None
