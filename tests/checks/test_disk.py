"""`df -Pk`: weights-disk."""

from __future__ import annotations

from hoststubs import fixture, run_sh

from checks import disk


def test_df_command():
    assert disk.df_command("/data/my models") == (
        "if [ -d '/data/my models' ]; then df -Pk '/data/my models' 2>&1; else echo missing '/data/my models'; fi; true"
    )


def test_df_ok():
    r = disk.judge_free_space("a2-1", fixture("disk/ok.txt"), "/data/models", 700)
    assert r.ok
    assert r.message == (
        "node a2-1: check weights-disk: expected at least 700 GiB free in /data/models, "
        "saw 5997.4 GiB free on /data (/dev/nvme1n1)"
    )


def test_df_low():
    r = disk.judge_free_space("a2-1", fixture("disk/low.txt"), "/data/models", 700)
    assert not r.ok
    assert r.seen == "100.0 GiB free on / (/dev/mapper/vg0-root)"


def test_df_threshold_is_inclusive():
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 2097152 1048576 1048576 50% /w\n"
    assert disk.judge_free_space("n", out, "/w", 1).ok
    assert not disk.judge_free_space("n", out, "/w", 1.5).ok


def test_df_missing_dir():
    r = disk.judge_free_space("a2-1", fixture("disk/missing.txt"), "/data/models", 700)
    assert r.message == (
        "node a2-1: check weights-disk: expected at least 700 GiB free in /data/models, "
        "saw directory /data/models does not exist"
    )


def test_df_garbage():
    r = disk.judge_free_space("a2-1", "df: /data/models: Input/output error\n", "/data/models", 700)
    assert r.seen == "unparseable output: df: /data/models: Input/output error"


def test_df_mount_with_space():
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sdb1 100 50 50 50% /mnt/big disk\n"
    assert disk.parse_df(out)["mount"] == "/mnt/big disk"


def test_df_command_runs_under_sh(tmp_path):
    present = tmp_path / "with space"
    present.mkdir()
    res = run_sh(disk.df_command(str(present)))
    assert res.returncode == 0
    assert disk.judge_free_space("n", res.stdout, str(present), 0).ok
    res = run_sh(disk.df_command(str(tmp_path / "absent")))
    assert res.returncode == 0
    assert disk.judge_free_space("n", res.stdout, str(tmp_path / "absent"), 0).seen == (
        f"directory {tmp_path / 'absent'} does not exist"
    )
