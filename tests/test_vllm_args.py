"""The serve flags of each supported vllm, and `serve.extraArgs` read the way its parser reads them
(the parser's own behaviour is tested on 0.18.0's table, the default image's)."""

import argparse
import json

import pytest

from core import vllm_args
from core.flags import (
    DERIVED_FLAGS,
    HEADLESS_CONFLICTS,
    KEY_FLAGS,
    LAYOUT_CONFLICTS,
    MODEL_FLAGS,
    SECRET_FOR_FLAG,
    hide_credentials,
    is_credential,
    names_credential,
)
from core.models import ClusterConfig

TABLE = vllm_args.load_table()
TABLES = [vllm_args.load_table(version) for version in vllm_args.versions()]


def test_the_default_table_is_vllm_0_18_0s_and_says_how_to_regenerate_it():
    document = json.loads(vllm_args.table_file("0.18.0").read_text())
    assert document["vllm"] == TABLE.version == "0.18.0"
    assert document["regenerate"].startswith("python scripts/gen_vllm_flags.py vllm-0.18.0.tar.gz")
    # The aliases beyond -tp/-dp that vllm's parser has, as the issue lists them.
    aliases = {alias: flag.name for flag in TABLE.flags for alias in flag.aliases}
    for alias, name in {
        "-ep": "--enable-expert-parallel",
        "-q": "--quantization",
        "-cc": "--compilation-config",
        "-dpl": "--data-parallel-size-local",
        "-dpr": "--data-parallel-start-rank",
        "-dpa": "--data-parallel-address",
        "-dpp": "--data-parallel-rpc-port",
        "-dpn": "--data-parallel-rank",
        "-asc": "--api-server-count",
        "-n": "--nnodes",
        "-r": "--node-rank",
    }.items():
        assert aliases[alias] == name


def _setting(path):
    model = ClusterConfig
    for part in path.split("."):
        field = model.model_fields[part]
        model = field.annotation
    return field


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.version)
@pytest.mark.parametrize("flag,path", MODEL_FLAGS)
def test_every_modelled_flag_exists_in_every_vllm_with_the_value_form_rendered(flag, path, table):
    kind = table.flag(flag).kind
    annotation = _setting(path).annotation
    if annotation is bool:
        assert kind == "switch" and table.flag(flag).negatable
    else:
        assert kind != "switch"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.version)
@pytest.mark.parametrize("flag", DERIVED_FLAGS)
def test_every_flag_the_plan_sets_exists_in_every_vllm(flag, table):
    assert table.flag(flag).name == flag


@pytest.mark.parametrize("flag", [*LAYOUT_CONFLICTS, *HEADLESS_CONFLICTS, *KEY_FLAGS, "--quantization-config"])
def test_every_flag_named_by_a_rule_exists_in_some_supported_vllm(flag):
    assert any(flag in (f.name for f in table.flags) for table in TABLES)


def _argparse_reading(arg):
    """What argparse itself, with the table's flags, takes one option argument for."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    vllm_args.add_arguments(parser, TABLE)

    def refuse(message):
        raise vllm_args.ArgError(message)

    parser.error = refuse
    try:
        found = parser._parse_optional(arg)
    except vllm_args.ArgError as e:
        return str(e)
    if found is None:
        return None
    return "unrecognized" if found[0] is None else found[1]


@pytest.mark.parametrize(
    "arg",
    [
        "--max-num-seqs",
        "--max-num-seqs=3",
        "--max-num",
        "--max-num-s=3",
        "--no-async",
        "--no-enable-prefix",
        "--he",
        "--enforce",
        "-tp",
        "-tp=4",
        "-t",
        "-dp",
        "-dpx",
        "-qascend",
        "-ep",
        "--nothing-like-this",
        "-1",
        "-0.5",
        "--max-num-seqs 32",
        "value",
    ],
)
def test_options_resolve_as_argparse_resolves_them(arg):
    try:
        option = vllm_args.resolve(arg, TABLE)
        ours = None if option is None else option.option
    except vllm_args.ArgError as e:
        ours = "unrecognized" if str(e).startswith("unrecognized") else str(e)
    assert ours == _argparse_reading(arg)


def test_flexible_rewriting_gathers_dotted_keys_into_one_json_argument_at_the_end():
    assert vllm_args.rewrite(
        ["--compilation_config.mode", "3", "--max_num_seqs=4", "--compilation-config.pass_config.x=true", "-O2"]
    ) == [
        "--max-num-seqs=4",
        "--optimization-level=2",
        "--compilation-config",
        '{"mode": 3, "pass_config": {"x": true}}',
    ]


@pytest.mark.parametrize(
    "text,value",
    [("16384", 16384), ("16k", 16000), ("16K", 16384), ("1.5k", 1500), ("2M", 2 * 1024**2)],
)
def test_sizes_read_as_vllm_reads_them(text, value):
    assert vllm_args.convert(TABLE.flag("--max-num-batched-tokens"), text) == value


@pytest.mark.parametrize("text", ["1.5K", "16 k", "lots", ""])
def test_sizes_vllm_refuses_are_refused(text):
    with pytest.raises(vllm_args.ArgError):
        vllm_args.convert(TABLE.flag("--max-num-batched-tokens"), text)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.version)
def test_the_credential_flags_are_the_key_and_the_token_each_with_the_secret_that_replaces_it(table):
    credentials = {flag.name for flag in table.flags if is_credential(flag)}
    assert credentials == {"--api-key", "--hf-token"}
    assert {flag: SECRET_FOR_FLAG[flag] for flag in credentials} == {"--api-key": "apiKey", "--hf-token": "hfToken"}
    # Key or token inside another word, or a number: no credential.
    for name in ("--ssl-keyfile", "--tokenizer", "--max-num-batched-tokens", "--long-prefill-token-threshold"):
        assert not is_credential(table.flag(name))


@pytest.mark.parametrize("arg", ["--api-key", "--hf_token", "--hf-tok=x", "--api-k", "--hf-token.a=x"])
def test_every_spelling_of_a_credential_flag_names_it(arg):
    assert names_credential(arg, TABLE)


@pytest.mark.parametrize("arg", ["--ssl-keyfile", "--hf", "--hf-tokn", "hf_x", "", "--max-model-len"])
def test_other_arguments_name_no_credential(arg):
    assert not names_credential(arg, TABLE)


T = "hf_S3cr3tT0kenValue"
HIDDEN_ARGS = {
    "two items": (["--hf-token", T, "--enforce-eager"], ["--hf-token", "<hidden>", "--enforce-eager"]),
    "= form": ([f"--hf-token={T}"], ["--hf-token=<hidden>"]),
    "underscores and a prefix": ([f"--hf_tok={T}", "--hf_tok", T], ["--hf_tok=<hidden>", "--hf_tok", "<hidden>"]),
    "every key --api-key takes": (["--api-key", T, T, "-tp", "4"], ["--api-key", "<hidden>", "<hidden>", "-tp", "4"]),
    "a dotted JSON key": (
        [f"--hf-token.a={T}", "--hf-token.b", T],
        ["--hf-token.a=<hidden>", "--hf-token.b", "<hidden>"],
    ),
    "JSON with spaces": ([f'--hf-token={{"t": "{T}"}}'], ["--hf-token=<hidden>"]),
    "a stray value after it": (["--hf-token", T, T], ["--hf-token", "<hidden>", "<hidden>"]),
    "one item": ([f"--hf-token {T}"], ["--hf-token <hidden>"]),
    "inside another flag's value": ([f"--max-model-len=8 --hf-token {T}"], ["--max-model-len=8 --hf-token <hidden>"]),
    "an unknown flag's value": ([f"--hf-tokn={T}", "--hf-tokn", T], ["--hf-tokn=<hidden>", "--hf-tokn", "<hidden>"]),
    "an ambiguous flag's value": ([f"--hf={T}", "--api", T], ["--hf=<hidden>", "--api", "<hidden>"]),
    "nothing else": (
        ["--max-num-seqs 32", "--kv-cache-dtype", "fp4", "--enforce-eagr", "-O3", "--hf-token", "", "--seed=1"],
        ["--max-num-seqs 32", "--kv-cache-dtype", "fp4", "--enforce-eagr", "-O3", "--hf-token", "", "--seed=1"],
    ),
}


def _reading(args):
    """Where each option is and what it resolves to, how many values it takes, whether it is refused."""
    return [(g.index, g.option and g.option.option, len(g.values), bool(g.error)) for g in vllm_args.read(args, TABLE)]


@pytest.mark.parametrize("args,shown", HIDDEN_ARGS.values(), ids=HIDDEN_ARGS)
def test_credential_values_are_hidden_in_every_spelling_and_the_items_read_the_same(args, shown):
    assert hide_credentials(args, TABLE) == shown
    assert _reading(shown) == _reading(args)
