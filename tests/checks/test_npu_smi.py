"""`npu-smi info`: npu-health and npu-idle."""

from __future__ import annotations

import pytest
from hoststubs import fixture

from checks import common, npu_smi


def messages(results):
    return [r.message for r in results]


def test_npu_smi_command():
    assert npu_smi.npu_smi_command() == "npu-smi info 2>&1 || true"


def test_parse_npu_smi_a2():
    info = npu_smi.parse_npu_smi(fixture("npu_smi/a2_healthy.txt"))
    assert info is not None
    assert len(info.devices) == 8
    d = info.devices[2]
    assert (d.npu_id, d.chip, d.phy_id, d.name, d.health) == (2, 0, None, "910B3", "OK")
    assert (d.hbm_used_mb, d.hbm_total_mb) == (3402, 65536)
    assert d.device_id == 2
    assert info.processes == ()
    assert info.idle_npus == tuple(range(8))


def test_parse_npu_smi_a3_counts_chips():
    info = npu_smi.parse_npu_smi(fixture("npu_smi/a3_healthy.txt"))
    assert info is not None
    assert len(info.devices) == 16
    assert sorted({d.npu_id for d in info.devices}) == list(range(8))
    last = info.devices[-1]
    assert (last.npu_id, last.chip, last.phy_id, last.device_id, last.name) == (7, 1, 15, 15, "Ascend910")


def test_npu_smi_a2_healthy():
    assert messages(npu_smi.judge_npu_smi("a2-1", fixture("npu_smi/a2_healthy.txt"), 8)) == [
        "node a2-1: check npu-health: expected 8 healthy NPUs, saw 8",
        "node a2-1: check npu-idle: expected no processes on any NPU, saw no processes",
    ]
    assert all(r.ok for r in npu_smi.judge_npu_smi("a2-1", fixture("npu_smi/a2_healthy.txt"), 8))


def test_npu_smi_a3_healthy():
    res = npu_smi.judge_npu_smi("a3-1", fixture("npu_smi/a3_healthy.txt"), 16)
    assert all(r.ok for r in res)
    assert res[0].message == "node a3-1: check npu-health: expected 16 healthy NPUs, saw 16"


def test_npu_smi_alarm():
    health, idle = npu_smi.judge_npu_smi("a2-1", fixture("npu_smi/a2_alarm.txt"), 8)
    assert not health.ok and idle.ok
    assert health.message == "node a2-1: check npu-health: expected 8 healthy NPUs, saw 7 (NPU 3 health Alarm)"
    assert health.detail["devices"][3]["health"] == "Alarm"


def test_npu_smi_processes_named():
    health, idle = npu_smi.judge_npu_smi("a2-1", fixture("npu_smi/a2_busy.txt"), 8)
    assert health.ok and not idle.ok
    assert idle.message == (
        "node a2-1: check npu-idle: expected no processes on any NPU, saw 3 processes "
        "(NPU 2: pid 1333928 python3, 37709 MB; NPU 5: pid 2210, 120 MB; "
        "NPU 5: pid 2211 VLLMWorker_TP, 50119 MB)"
    )
    assert idle.detail["processes"][0] == {
        "npu_id": 2,
        "chip": 0,
        "pid": 1333928,
        "name": "python3",
        "memory_mb": 37709,
    }


def test_npu_smi_a3_warning_and_process_name_chip_and_device():
    health, idle = npu_smi.judge_npu_smi("a3-2", fixture("npu_smi/a3_busy_warning.txt"), 16)
    assert health.message == (
        "node a3-2: check npu-health: expected 16 healthy NPUs, saw 15 (NPU 3 chip 1 (device 7) health Warning)"
    )
    assert idle.message == (
        "node a3-2: check npu-idle: expected no processes on any NPU, saw 1 process "
        "(NPU 3 chip 1 (device 7): pid 3328327 VLLMWorker_TP, 50119 MB)"
    )


def test_npu_smi_wrong_server_type():
    health, _ = npu_smi.judge_npu_smi("a3-1", fixture("npu_smi/a3_healthy.txt"), 8)
    assert not health.ok
    assert health.message == (
        "node a3-1: check npu-health: expected 8 healthy NPUs, saw 16 (16 devices listed on 8 NPU ids)"
    )
    health, _ = npu_smi.judge_npu_smi("a2-1", fixture("npu_smi/a2_healthy.txt"), 16)
    assert health.seen == "8 (8 devices listed on 8 NPU ids)"


def test_npu_smi_garbage():
    res = npu_smi.judge_npu_smi("a2-1", fixture("npu_smi/garbage.txt"), 8)
    assert messages(res) == [
        "node a2-1: check npu-health: expected 8 healthy NPUs, "
        "saw unparseable output: dcmi module initialize failed. ret is -8005",
        "node a2-1: check npu-idle: expected no processes on any NPU, "
        "saw unparseable output: dcmi module initialize failed. ret is -8005",
    ]


def test_npu_smi_missing_process_table_is_not_idle():
    text = fixture("npu_smi/a2_healthy.txt").split("| NPU     Chip")[0]
    health, idle = npu_smi.judge_npu_smi("a2-1", text, 8)
    assert health.ok
    assert not idle.ok
    assert idle.seen == "no process table in npu-smi output"


@pytest.mark.parametrize(
    "garbage",
    ["", None, b"\xff\xfe binary", "|||||\n| 0 |\n", "+====+\n| a | b | c |\n", "x" * 500, "| 0     910B3 | OK |\n"],
)
def test_npu_smi_never_raises(garbage):
    res = npu_smi.judge_npu_smi("n", garbage, 8)  # type: ignore[arg-type]
    assert [r.ok for r in res] == [False, False]


def test_unparseable_truncates_to_80_chars():
    assert common.unparseable("a\nb   c") == "unparseable output: a b c"
    assert common.unparseable("y" * 200) == "unparseable output: " + "y" * 80
    assert common.unparseable("  \n") == "empty output"
