"""Which vllm's flags a stack is read with: its image's, through vllm-ascend's release table; and
the command lines each supported release runs."""

import copy
import json

import pytest
from mocked import stack_settings

from core import vllm_args
from core.config import ConfigError, load_config
from core.models import Image
from core.plan import plan_cluster
from core.render import node_script
from core.vllm_releases import RELEASES, SUPPORTED_VLLM, release_of, tag_of

DIGEST = "sha256:" + "a" * 64
SUPPORTED = "one of 0.13.0, 0.18.0, 0.23.0"


def stack(name="a2", image=None, **changes):
    raw = copy.deepcopy(stack_settings(name))
    if image is not None:
        raw["image"] = image
    raw.update(changes)
    return raw


def problems(raw):
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    return caught.value.problems


def test_every_release_has_the_table_of_its_vllm_and_nothing_else_has_one():
    assert vllm_args.versions() == SUPPORTED_VLLM == ("0.13.0", "0.18.0", "0.23.0")
    for vllm in RELEASES.values():
        document = json.loads(vllm_args.table_file(vllm).read_text())
        assert document["vllm"] == vllm_args.load_table(vllm).version == vllm
        assert document["regenerate"].startswith(f"python scripts/gen_vllm_flags.py vllm-{vllm}.tar.gz")


def test_the_default_image_is_read_with_the_default_table():
    assert Image().vllm == RELEASES[Image().tag] == vllm_args.DEFAULT_VERSION


def test_a_vllm_without_a_table_is_refused_naming_the_tables():
    with pytest.raises(ValueError, match="no table of vllm 0.11.0's flags; the tables are of vllm 0.13.0, 0.18.0"):
        vllm_args.load_table("0.11.0")


@pytest.mark.parametrize(
    "tag,release",
    [
        ("v0.18.0", "v0.18.0"),
        ("v0.18.0-a3", "v0.18.0"),
        ("v0.23.0-a3-openeuler", "v0.23.0"),
        ("v0.13.0-310p", "v0.13.0"),
        ("v0.18.0rc1", None),
        ("v0.11.0", None),
        ("0.1", None),
        ("", None),
    ],
)
def test_a_tag_names_its_release_whatever_the_build(tag, release):
    assert release_of(tag) == release


@pytest.mark.parametrize(
    "reference,tag",
    [
        ("quay.io/ascend/vllm-ascend:v0.13.0-a3", "v0.13.0-a3"),
        ("localhost:5000/vllm-ascend:v0.23.0", "v0.23.0"),
        (f"localhost:5000/vllm-ascend@{DIGEST}", ""),
        (f"quay.io/ascend/vllm-ascend:v0.23.0@{DIGEST}", "v0.23.0"),
        ("deepseek-r1-ascend-sim:0.1", "0.1"),
    ],
)
def test_the_tag_of_a_reference_is_read_past_a_registry_port_and_a_digest(reference, tag):
    assert tag_of(reference) == tag


@pytest.mark.parametrize(
    "image,vllm",
    [
        ({}, "0.18.0"),
        ({"tag": "v0.13.0"}, "0.13.0"),
        ({"tag": "v0.23.0"}, "0.23.0"),
        ({"ref": "quay.io/ascend/vllm-ascend:v0.23.0-a3"}, "0.23.0"),
        ({"ref": f"registry.local:5000/ascend/vllm-ascend@{DIGEST}", "vllmVersion": "0.13.0"}, "0.13.0"),
        # A site's own build on a release's tag: the key says what it runs.
        ({"tag": "v0.23.0", "vllmVersion": "0.18.0"}, "0.18.0"),
    ],
)
def test_the_image_decides_which_vllm_reads_the_command_line(image, vllm):
    assert load_config(stack(image=image)).image.vllm == vllm


@pytest.mark.parametrize(
    "image,problem",
    [
        (
            {"tag": "v0.11.0"},
            "image.tag: 'v0.11.0' names no vllm-ascend release whose vllm this program knows; use the tag "
            "v0.13.0, v0.18.0, v0.23.0 (or one of their -a3, -openeuler, ... builds), or set image.vllmVersion "
            f"to the vllm the image runs, {SUPPORTED}",
        ),
        (
            {"ref": f"registry.local:5000/ascend/vllm-ascend@{DIGEST}"},
            f"image.ref: 'registry.local:5000/ascend/vllm-ascend@{DIGEST}' names no vllm-ascend release whose vllm "
            "this program knows (a digest names none); use the tag v0.13.0, v0.18.0, v0.23.0 (or one of their -a3, "
            f"-openeuler, ... builds), or set image.vllmVersion to the vllm the image runs, {SUPPORTED}",
        ),
        (
            {"vllmVersion": "0.11.0"},
            f"image.vllmVersion: '0.11.0' is no vllm whose flags this program knows; use the vllm the image runs, "
            f"{SUPPORTED}",
        ),
    ],
)
def test_an_image_whose_vllm_is_unknown_is_refused_with_the_supported_ones(image, problem):
    assert problems(stack(image=image)) == [problem]


def test_an_unknown_image_vllm_still_lets_every_other_problem_show():
    raw = stack(image={"tag": "v0.11.0"}, serve={"extraArgs": ["--enforce-eagr"]})
    assert [p.split(":", 1)[0] for p in problems(raw)] == ["image.tag", "serve.extraArgs[0]"]


@pytest.mark.parametrize(
    "release,args,problem",
    [
        # 0.13 has no -ep alias: argparse reads it as an unknown option, not as --enable-expert-parallel.
        ("v0.13.0", ["-ep"], "vllm 0.13.0 refuses '-ep': unrecognized arguments: -ep"),
        (
            "v0.18.0",
            ["-ep"],
            "'-ep' sets --enable-expert-parallel, which is set from serve.enableExpertParallel; set it there",
        ),
        # Removed after 0.13.
        ("v0.13.0", ["--disable-log-requests"], None),
        ("v0.18.0", ["--disable-log-requests"], "vllm 0.18.0 refuses '--disable-log-requests': unrecognized"),
        # 0.23 adds -sc for --speculative-config, and flags that set one key of it.
        (
            "v0.23.0",
            ["-sc", "{}"],
            "'-sc' sets --speculative-config, which is set from serve.speculativeConfig; set it there",
        ),
        (
            "v0.23.0",
            ["--spec-tokens", "2"],
            "'--spec-tokens' sets num_speculative_tokens of --speculative-config, which is set from "
            "serve.speculativeConfig; set num_speculative_tokens there",
        ),
        ("v0.23.0", ["--spec-method=mtp"], "'--spec-method=mtp' sets method of --speculative-config, which is set "),
        ("v0.18.0", ["--spec-tokens", "2"], "vllm 0.18.0 refuses '--spec-tokens': unrecognized arguments"),
        (
            "v0.23.0",
            ["--quantization-config", "{}"],
            "'--quantization-config' refines --quantization, which vllm 0.23.0 refuses beside serve.quantization "
            "'ascend'; remove it, or use it with serve.quantization one of fp8_per_tensor, fp8_per_block, mxfp8, "
            "int8_per_channel_weight_only, online",
        ),
        (
            "v0.23.0",
            ["-dpm"],
            "'-dpm' conflicts with this deployment's layout: the head serves the API for the whole "
            "group; the multi-port mode would start an API server per data-parallel rank behind vllm's own supervisor",
        ),
    ],
)
def test_extra_args_are_read_with_the_flags_of_the_images_vllm(release, args, problem):
    raw = stack(image={"tag": release}, serve={"extraArgs": args})
    if problem is None:
        load_config(raw)
    else:
        (found,) = problems(raw)
        assert found.startswith(f"serve.extraArgs[0]: {problem}")


def test_quantization_config_is_accepted_beside_an_online_quantization():
    load_config(
        stack(
            image={"tag": "v0.23.0"},
            serve={"quantization": "fp8_per_block", "extraArgs": ["--quantization-config", "{}"]},
        )
    )


def _plan(name, release=None):
    return plan_cluster(load_config(stack(name, image={"tag": release} if release else None)), stack=name)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("name", ["a2", "a3"])
def test_every_release_runs_the_tutorials_command_lines_as_its_vllm_reads_them(name, release):
    """No flag the plan renders changed name, value form or meaning between the supported vllm, so
    every release runs v0.18.0's command lines, byte for byte (tests/test_plan.py pins those to the
    tutorial's); only the image, and the group fingerprint that hashes it, differ."""
    default, planned = _plan(name), _plan(name, release)
    table = vllm_args.load_table(RELEASES[release])
    for theirs, mine in zip(default.nodes, planned.nodes, strict=True):
        assert mine.argv == theirs.argv
        assert mine.image == theirs.image.replace(":v0.18.0", f":{release}")
        script = node_script(default, theirs).replace(":v0.18.0", f":{release}")
        assert node_script(planned, mine) == script.replace(default.group_fingerprint, planned.group_fingerprint)
        # Every option by its own name, with no error: the same options in every release's parser.
        read = vllm_args.read(list(mine.argv[3:]), table)
        assert [g.error for g in read if g.error] == []
        assert [g.option.option for g in read] == [g.text for g in read]
