"""vllm 0.18.0's serve flags, and `serve.extraArgs` read the way its parser reads them."""

import argparse
import json

import pytest

from core import vllm_args
from core.flags import DERIVED_FLAGS, HEADLESS_CONFLICTS, LAYOUT_CONFLICTS, MODEL_FLAGS
from core.models import ClusterConfig

TABLE = vllm_args.load_table()


def test_the_table_is_vllm_0_18_0s_and_says_how_to_regenerate_it():
    document = json.loads(vllm_args.TABLE_FILE.read_text())
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


@pytest.mark.parametrize("flag,path", MODEL_FLAGS)
def test_every_modelled_flag_exists_with_the_value_form_rendered(flag, path):
    kind = TABLE.flag(flag).kind
    annotation = _setting(path).annotation
    if annotation is bool:
        assert kind == "switch" and TABLE.flag(flag).negatable
    else:
        assert kind != "switch"


@pytest.mark.parametrize("flag", [*DERIVED_FLAGS, *LAYOUT_CONFLICTS, *HEADLESS_CONFLICTS])
def test_every_flag_named_by_a_rule_exists(flag):
    assert TABLE.flag(flag).name == flag


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
