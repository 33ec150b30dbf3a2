"""`npu-smi info -t board`: npu-board (firmware, Compatibility, chip family, HBM per NPU)."""

from __future__ import annotations

import pytest
from hoststubs import fixture, run_sh, stub

from checks import board, compat
from checks.steps import STEPS, StepFailed

TABLE = compat.load()
A2, A3 = "atlas-800-a2", "atlas-800-a3"
SHARE = "model.requiredHbmGb 1024 over 16 NPUs"
EXPECTED = (
    "expected 8 NPU boards with a compatible firmware, {} chips, at least 64 GB of HBM per NPU "
    "(model.requiredHbmGb 1024 over 16 NPUs)"
)


def judge(name: str, profile: str = A2, needed: int = 64, table: compat.Table = TABLE):
    return board.judge_npu_board("a2-1", fixture(f"board/{name}"), profile, 8, needed, SHARE, table)


@pytest.mark.parametrize(
    ("name", "profile", "soc"), [("a2_ok.txt", A2, "Ascend910B3"), ("a3_ok.txt", A3, "Ascend910_9392")]
)
def test_a_healthy_board_reports_its_chip_firmware_and_hbm(name, profile, soc):
    result = judge(name, profile)
    assert result.ok
    assert (
        result.message
        == f"node a2-1: check npu-board: {EXPECTED.format(profile)}, saw 8 boards OK, {soc}, 64 GB HBM per NPU"
    )
    assert result.detail["soc"] == soc and result.detail["hbmGbPerNpu"] == 64
    assert result.detail["firmware"] == {str(i): "7.7.0.6.236" for i in range(8)}
    assert result.detail["warnings"] == []


def test_the_soc_is_read_as_each_family_prints_it():
    assert board.chip_soc(board.fields(fixture("board/a2_910b4_chip0.txt"))) == "Ascend910B4"
    assert board.chip_soc(board.fields(fixture("board/a3_chip0.txt"))) == "Ascend910_9392"
    assert board.chip_soc({"Chip Name": "NA"}) is None


def test_compatibility_nok_is_refused_with_the_way_forward():
    result = judge("a2_nok.txt")
    assert not result.ok
    assert result.seen == "Compatibility NOK on NPU 3 (driver 25.5.0, firmware 7.7.0.6.236)"
    assert "compatible_version_fw" in result.detail["fix"]


def test_not_support_warns_without_refusing():
    result = judge("a2_not_root.txt")
    assert result.ok
    assert result.detail["warnings"] == [
        "node a2-1: npu-smi says Compatibility NOT SUPPORT on NPU 0-7, so the firmware was not checked against "
        "the driver; run the checks as root to have it checked"
    ]
    assert result.detail["firmware"]["0"] == "NA"


def test_an_unknown_compatibility_warns_too():
    output = fixture("board/a2_ok.txt").replace(
        "Compatibility                  : OK", "Compatibility                  : UNKNOWN", 1
    )
    result = board.judge_npu_board("a2-1", output, A2, 8, 64, SHARE, TABLE)
    assert result.ok and "Compatibility UNKNOWN on NPU 0," in result.detail["warnings"][0]


def test_a_910b4_cannot_hold_the_layout():
    result = judge("a2_910b4.txt")
    assert not result.ok
    assert result.seen == "32 GB of HBM per NPU on Ascend910B4"
    assert result.detail["fix"] == "use nodes whose NPUs hold more HBM, or more nodes (nodes, serve.dataParallelSize)"
    # With more nodes each NPU's share is smaller, and it fits.
    assert judge("a2_910b4.txt", needed=32).ok


def test_a_chip_of_the_other_family_than_the_profile_is_refused():
    result = judge("a3_ok.txt", A2)
    assert not result.ok
    assert result.seen == "Ascend910_9392, an atlas-800-a3 chip"
    assert result.detail["fix"] == "set profile: atlas-800-a3, or deploy this stack on atlas-800-a2 nodes"


def test_a_site_row_decides_and_says_so():
    row = {"soc": "Ascend910_9392", "family": A2, "hbmGb": 64, "reason": "lab board flashed as A2"}
    assert judge("a3_ok.txt", A2, table=compat.load([row])).ok
    row = {"soc": "Ascend910B3", "family": A3, "reason": "test"}
    result = judge("a2_ok.txt", A2, table=compat.load([row]))
    assert result.seen == "Ascend910B3, an atlas-800-a3 chip (by preflight.compatOverrides: test)"


def test_a_chip_the_table_does_not_know_warns():
    output = fixture("board/a2_ok.txt").replace("910B3", "910B9")
    result = board.judge_npu_board("a2-1", output, A2, 8, 64, SHARE, TABLE)
    assert result.ok
    assert result.detail["warnings"][0].startswith("node a2-1: chip Ascend910B9 is not in the pairing table")


@pytest.mark.parametrize("name", ["garbage.txt", "a2_truncated.txt"])
def test_garbage_and_truncated_output_are_refused_as_unparseable(name):
    result = judge(name)
    assert not result.ok and result.seen.startswith("unparseable output: ")


def test_a_board_that_does_not_answer_is_refused():
    output = fixture("board/a2_ok.txt")
    start = output.index("=== board 5")
    end = output.index("=== board 6")
    output = output[:start] + "=== board 5\nError: the device 5 does not exist\n" + output[end:]
    result = board.judge_npu_board("a2-1", output, A2, 8, 64, SHARE, TABLE)
    assert not result.ok and result.seen == "no board answer for NPU 5"


def test_the_command_asks_every_board_then_npu_0s_chip(tmp_path):
    calls = tmp_path / "calls"
    stub(tmp_path / "npu-smi", f'echo "$*" >> {calls}; echo "        Compatibility                  : OK"')
    done = run_sh(board.board_command(2), env_path=f"{tmp_path}:/usr/bin:/bin")
    assert calls.read_text().splitlines() == [
        "info",
        "info -t board -i 0",
        "info -t board -i 1",
        "info -t board -i 0 -c 0",
    ]
    assert done.stdout.splitlines()[-1] == "=== end"
    assert board.parse_board(done.stdout).boards[1].compatibility == "OK"


def test_the_step_reports_what_the_program_reads_and_fails_with_the_way_forward():
    spec = {"node": "a2-1", "nodes": ["a2-1"], "npuIds": 8, "profile": A2, "hbmGbNeeded": 64, "hbmReason": SHARE}
    spec["overrides"] = []
    report = STEPS["npu-board"].judge(spec, {"a2-1": fixture("board/a2_not_root.txt")})
    assert (report["soc"], report["hbmGbPerNpu"], len(report["warnings"])) == ("Ascend910B3", 64, 1)
    with pytest.raises(StepFailed) as failed:
        STEPS["npu-board"].judge(spec, {"a2-1": fixture("board/a2_nok.txt")})
    assert str(failed.value).endswith(
        "saw Compatibility NOK on NPU 3 (driver 25.5.0, firmware 7.7.0.6.236); install a firmware the driver's "
        "version.info lists (compatible_version_fw) and reboot the node, then run `pulumi up` again (a failed check "
        "is not saved, so it runs again)"
    )
