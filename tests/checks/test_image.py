"""The node's pulled image against the node: image-host (CANN and SOC_VERSION read from the image,
the driver from version.info, the chip from npu-smi), and the pairing table it judges by."""

from __future__ import annotations

import pytest
from fakehosts import image_host_output
from hoststubs import fixture, run_sh, stub

from checks import compat, driver_files, image

TABLE = compat.load()
A2, A3 = "atlas-800-a2", "atlas-800-a3"
IMAGE = "quay.io/ascend/vllm-ascend:v0.18.0"
EXPECTED = "expected an image built for {} whose CANN the node's driver supports"


def output(inspect: str, version: str = "version_new.txt", chip: str = "a2_chip0.txt", toolkit: str | None = None):
    return image_host_output(
        fixture(f"image/{inspect}"),
        fixture(f"driver_files/{version}"),
        fixture(f"board/{chip}"),
        fixture(f"image/{toolkit}") if toolkit else None,
    )


def judge(text: str, profile: str = A2, table: compat.Table = TABLE):
    return image.judge_image_host("a2-1", text, IMAGE, profile, table)


# --- readers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inspect", "cann", "soc"),
    [("v0.18.0_a2.json", "8.5.1", "ascend910b1"), ("v0.18.0_a3.json", "8.5.1", "ascend910_9391")],
)
def test_the_cann_and_soc_are_read_from_the_images_environment(inspect, cann, soc):
    parsed = image.parse_image_host(output(inspect))
    assert (parsed.image.cann, parsed.image.soc) == (cann, soc)


def test_a_toolkit_path_without_a_version_falls_back_to_the_install_info():
    env = image.parse_image_env(fixture("image/v0.11.0_a2.json"))
    assert env["ASCEND_TOOLKIT_HOME"] == "/usr/local/Ascend/ascend-toolkit/latest"
    parsed = image.parse_image_host(output("v0.11.0_a2.json", toolkit="toolkit_8.3.rc2.txt"))
    assert parsed.image.cann == "8.3.RC2"
    assert image.toolkit_version("cat: /usr/local/Ascend/...: No such file or directory") is None


@pytest.mark.parametrize(
    ("version", "driver"),
    [
        ("version_new.txt", "25.5.0"),  # package_version, as newer drivers write it
        ("version_old.txt", "23.0.7"),  # no package_version: Version
        ("version_rc.txt", "25.0.rc1.1"),
        ("version_newer.txt", "26.0.RC1"),
    ],
)
def test_the_driver_version_is_package_version_else_version(version, driver):
    assert image.parse_image_host(output("v0.18.0_a2.json", version)).driver == driver
    assert driver_files.parse_driver_files("=== version.info\n" + fixture(f"driver_files/{version}")).version == driver


@pytest.mark.parametrize("inspect", ["truncated.json", "no_such_image.txt"])
def test_truncated_inspect_output_or_a_missing_image_is_unparseable(inspect):
    result = judge(output(inspect))
    assert not result.ok and result.seen.startswith("unparseable output: ")


def test_garbage_and_output_cut_before_its_end_are_unparseable():
    assert judge("sh: 1: docker: not found\n").seen == "unparseable output: sh: 1: docker: not found"
    whole = output("v0.18.0_a2.json")
    assert image.parse_image_host(whole[: whole.index("=== chip 0")]) is None
    assert judge("").seen == "empty output"


# --- the judgement ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inspect", "chip", "profile"), [("v0.18.0_a2.json", "a2_chip0.txt", A2), ("v0.18.0_a3.json", "a3_chip0.txt", A3)]
)
def test_the_v0_18_0_image_fits_a_host_on_driver_25_5(inspect, chip, profile):
    result = judge(output(inspect, chip=chip), profile)
    assert result.ok and result.detail["warnings"] == []
    assert (result.detail["cann"], result.detail["family"], result.detail["driver"]) == ("8.5.1", profile, "25.5.0")


def test_a_driver_below_what_the_cann_needs_is_refused():
    result = judge(output("v0.18.0_a2.json", "version_old.txt"))
    assert result.message == (
        f"node a2-1: check image-host: {EXPECTED.format(A2)}, saw driver 23.0.7, below 25.5 which CANN 8.5.1 of "
        f"{IMAGE} needs"
    )
    assert result.detail["fix"] == (
        "upgrade the node's driver and firmware (HDK) to 25.5 or newer, or use an image with an older CANN"
    )


def test_a_driver_newer_than_any_tested_pairing_warns():
    result = judge(output("v0.18.0_a2.json", "version_newer.txt"))
    assert result.ok
    assert result.detail["warnings"] == [
        "node a2-1: driver 26.0.RC1 is newer than any tested with CANN 8.5.1 (up to 25.5, checks/compatibility.toml); "
        "it is likely fine, and preflight.compatOverrides can record that it is"
    ]


def test_a_site_row_silences_the_warning_and_is_named_when_it_refuses():
    tested = {"cann": "8.5.1", "driverMin": "25.5", "driverNewest": "26.0", "reason": "ran 26.0.RC1 for a month"}
    assert judge(output("v0.18.0_a2.json", "version_newer.txt"), table=compat.load([tested])).detail["warnings"] == []
    stricter = {"cann": "8.5.1", "driverMin": "25.5.1", "driverNewest": "25.5", "reason": "graph capture"}
    result = judge(output("v0.18.0_a2.json"), table=compat.load([stricter]))
    assert result.seen.endswith("needs (by preflight.compatOverrides: graph capture)")


def test_an_image_built_for_the_other_family_than_the_profile_is_refused():
    result = judge(output("v0.18.0_a3.json"))
    assert result.seen == f"{IMAGE} built for atlas-800-a3 (SOC_VERSION=ascend910_9391)"
    assert result.detail["fix"].startswith("use vllm-ascend's atlas-800-a2 build of the image")


def test_an_image_built_for_the_other_family_than_the_chip_is_refused():
    # The profile says A2 and so does the image, but the node is an A3.
    result = judge(output("v0.18.0_a2.json", chip="a3_chip0.txt"))
    assert result.seen == (
        f"{IMAGE} built for atlas-800-a2 (SOC_VERSION=ascend910b1) on the node's Ascend910_9392 (atlas-800-a3)"
    )


def test_a_cann_without_a_tested_pairing_warns():
    result = judge(output("v0.11.0_a2.json", "version_rc.txt", toolkit="toolkit_8.3.rc2.txt"))
    assert result.ok and result.detail["cann"] == "8.3.RC2"
    assert result.detail["warnings"][0].startswith("node a2-1: no tested driver pairing for CANN 8.3.RC2")


def test_a_later_build_under_the_same_tag_on_cann_9_needs_driver_25_5():
    result = judge(output("v0.18.0_a2_cann9.json", "version_rc.txt"))
    assert result.seen.startswith("driver 25.0.rc1.1, below 25.5 which CANN 9.0.0")


# --- the command, under a real sh ---------------------------------------------------------------


def test_the_command_reads_the_install_info_only_when_the_path_names_no_version(tmp_path):
    # Stand-ins: `docker image inspect` prints the recorded JSON (or, with --format, the
    # environment one variable a line), `docker run` the toolkit's install info, npu-smi the chip.
    calls, version = tmp_path / "calls", tmp_path / "version.info"
    version.write_text(fixture("driver_files/version_new.txt"))
    (tmp_path / "toolkit").write_text(fixture("image/toolkit_8.3.rc2.txt"))
    (tmp_path / "chip").write_text(fixture("board/a2_chip0.txt"))
    stub(tmp_path / "npu-smi", f"cat {tmp_path}/chip")
    stub(
        tmp_path / "docker",
        f'echo "docker $1" >> {calls}\n'
        f'case "$1 $3" in "image --format") cat {tmp_path}/env ;; image*) cat {tmp_path}/inspect.json ;; '
        f"run*) cat {tmp_path}/toolkit ;; esac",
    )
    for inspect, cann, runs in (("v0.18.0_a2.json", "8.5.1", False), ("v0.11.0_a2.json", "8.3.RC2", True)):
        (tmp_path / "inspect.json").write_text(fixture(f"image/{inspect}"))
        env = image.parse_image_env(fixture(f"image/{inspect}"))
        (tmp_path / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        calls.write_text("")
        done = run_sh(image.image_host_command("sha256:5e1f", str(version)), env_path=f"{tmp_path}:/usr/bin:/bin")
        assert ("docker run" in calls.read_text()) is runs
        parsed = image.parse_image_host(done.stdout)
        assert (parsed.image.cann, parsed.driver, parsed.chip) == (cann, "25.5.0", "Ascend910B3")


# --- the table ----------------------------------------------------------------------------------


def test_versions_compare_as_huawei_numbers_them():
    assert compat.at_least("25.5.2", "25.5") and compat.at_least("26.0.RC1", "25.5")
    assert not compat.at_least("25.3.rc1", "25.5") and not compat.at_least("24.1.rc3.7", "25.5")
    # A release candidate comes before its release.
    assert not compat.at_least("25.5.rc1", "25.5.0") and compat.at_least("25.5.0", "25.5.rc1")
    assert compat.at_most("25.5.2", "25.5") and not compat.at_most("26.0.rc1", "25.5")
    assert compat.at_most("26.1.0.b061", "26.1.0")
    assert compat.version_key("garbage") is None and compat.version_key("25") is None


def test_every_row_of_the_table_names_its_source_and_parses():
    for row in TABLE.cann:
        assert row.source and compat.version_key(row.cann) and compat.version_key(row.driver_min)
        assert compat.version_key(row.driver_newest) and compat.at_most(row.driver_min, row.driver_newest)
    for row in TABLE.socs:
        assert row.source and row.family in TABLE.chips_per_npu
    assert TABLE.for_cann("9.0.0").cann == "9.0" and TABLE.for_cann("8.5.1").cann == "8.5.1"
    assert TABLE.for_cann("8.3.RC2") is None and TABLE.for_soc("ascend910b1").family == A2
