"""mooncake: Mooncake's transfer engine imports in a throwaway container of the node's pulled
image; otherwise the error seen and the way forward."""

from __future__ import annotations

import os
import sys

import pytest
from hoststubs import fixture, run_sh, stub

from checks import mooncake
from checks.steps import STEPS, StepFailed, node_script

IMAGE = "quay.io/ascend/vllm-ascend:v0.18.0-a3"
IMAGE_ID = "sha256:5e1f0c3a9d7b24e8f61a0b9c3d2e7f4a8b6c1d0e9f8a7b6c5d4e3f2a1b0c9d8e"
EXPECTED = f"expected Mooncake's TransferEngine importable in {IMAGE}"

# docker as the check calls it: records its arguments, then runs the image's python3 here.
DOCKER = f'printf "%s\\n" "$@" > "$ARGS"\nshift 7\nexec {sys.executable} "$@"\n'


def judge(output: str):
    return mooncake.judge_mooncake("a3-0", output, IMAGE)


@pytest.fixture
def docker(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir / "docker", DOCKER)
    monkeypatch.setenv("ARGS", str(tmp_path / "args"))
    return tmp_path


def run(docker_dir, pythonpath: str | None = None) -> str:
    env = f"PYTHONPATH={pythonpath} " if pythonpath else ""
    path = f"{docker_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return run_sh(env + mooncake.mooncake_command(IMAGE_ID), path).stdout


def test_the_command_runs_the_exact_image_with_no_network_and_no_device(docker):
    run(docker)
    assert (docker / "args").read_text().splitlines() == [
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        IMAGE_ID,
        "-c",
        "from mooncake.engine import TransferEngine; print('mooncake ok')",
    ]
    assert "--device" not in mooncake.mooncake_command(IMAGE_ID)


def test_the_import_passes_where_mooncake_is_and_fails_with_pythons_own_words_where_not(docker, tmp_path):
    package = tmp_path / "site" / "mooncake"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "engine.py").write_text("class TransferEngine:\n    pass\n")
    assert judge(run(docker, str(tmp_path / "site"))).ok
    result = judge(run(docker))
    assert (result.ok, result.seen) == (False, "ModuleNotFoundError: No module named 'mooncake'")


def test_an_image_id_is_quoted():
    with pytest.raises(ValueError, match="line break"):
        mooncake.mooncake_command("sha256:1\nrm -rf /")
    assert "'sha256:x; reboot'" in mooncake.mooncake_command("sha256:x; reboot")


# --- the judgement ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "seen", "fix"),
    [
        ("no_module.txt", "ModuleNotFoundError: No module named 'mooncake'", mooncake.FIX),
        (
            "shared_library.txt",
            "ImportError: libtransfer_engine.so: cannot open shared object file: No such file or directory",
            mooncake.FIX,
        ),
        (
            "no_such_image.txt",
            "docker: Error response from daemon: pull access denied for sha256, repository does not exist or may "
            "require 'docker login': denied: requested access to the resource is denied.",
            mooncake.DOCKER_FIX,
        ),
    ],
)
def test_a_failed_import_names_the_error_and_the_way_forward(name, seen, fix):
    result = judge(fixture(f"mooncake/{name}"))
    assert (result.ok, result.seen, result.detail["fix"]) == (False, seen, fix)


def test_ok_only_on_the_marker_line():
    assert judge(fixture("mooncake/ok.txt")).seen == "mooncake ok"
    assert not judge("not mooncake ok\n").ok
    assert judge("").seen == "no output"
    assert judge("sh: 1: docker: not found\n").seen == "sh: 1: docker: not found"


def test_the_step_fails_with_one_line_naming_node_image_error_and_way_forward():
    spec = {"node": "a3-0", "image": IMAGE, "imageId": IMAGE_ID}
    with pytest.raises(StepFailed) as failed:
        STEPS["mooncake"].judge(spec, {"a3-0": fixture("mooncake/no_module.txt")})
    assert str(failed.value) == (
        f"node a3-0: check mooncake: {EXPECTED}, saw ModuleNotFoundError: No module named 'mooncake'; "
        "use a vllm-ascend image that ships Mooncake (the v0.18.0 images do), "
        "then run `pulumi up` again (a failed check is not saved, so it runs again)"
    )
    assert STEPS["mooncake"].judge(spec, {"a3-0": "mooncake ok\n"}) == {"seen": "mooncake ok"}
    assert node_script("mooncake", spec) == mooncake.mooncake_command(IMAGE_ID)
