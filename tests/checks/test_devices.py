"""`ls /dev`: dev-davinci."""

from __future__ import annotations

from hoststubs import fixture

from checks import devices


def test_dev_command():
    assert devices.dev_list_command() == "ls -1 /dev 2>&1 || true"


def test_dev_ok_a2_and_a3():
    r = devices.judge_dev_davinci("a2-1", fixture("devices/a2_ok.txt"), 8)
    assert r.ok
    assert r.message == (
        "node a2-1: check dev-davinci: expected 8 /dev/davinciN devices plus davinci_manager, devmm_svm, hisi_hdc, "
        "saw 8 davinciN devices (0-7)"
    )
    assert devices.judge_dev_davinci("a3-1", fixture("devices/a3_ok.txt"), 16).ok


def test_dev_degraded():
    r = devices.judge_dev_davinci("a2-1", fixture("devices/a2_degraded.txt"), 8)
    assert not r.ok
    assert r.seen == "7 davinciN devices (0-6); missing /dev/devmm_svm, /dev/hisi_hdc"
    assert r.detail["missing_management"] == ["devmm_svm", "hisi_hdc"]


def test_dev_garbage():
    r = devices.judge_dev_davinci("a2-1", fixture("devices/garbage.txt"), 8)
    assert r.seen == "unparseable output: ls: cannot open directory '/dev': Permission denied"
    assert not devices.judge_dev_davinci("a2-1", "", 8).ok


def test_dev_no_npus_at_all():
    r = devices.judge_dev_davinci("a2-1", "null\ntty\nzero\n", 8)
    assert r.seen == "0 davinciN devices; missing /dev/davinci_manager, /dev/devmm_svm, /dev/hisi_hdc"
