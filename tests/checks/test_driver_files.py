"""Driver paths and version.info: driver-files."""

from __future__ import annotations

import pytest
from hoststubs import fixture, run_sh

from checks import driver_files

DRIVER_PATHS = [
    "/usr/local/dcmi",
    "/usr/local/bin/npu-smi",
    "/usr/local/Ascend/driver/lib64",
    "/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info",
]


def test_driver_command_quotes_paths():
    cmd = driver_files.driver_files_command(["/usr/local/dcmi", "/opt/my dir/x"])
    assert cmd == (
        'for p in /usr/local/dcmi \'/opt/my dir/x\'; do if [ -e "$p" ]; then echo "present $p"; '
        "else echo \"missing $p\"; fi; done; echo '=== version.info'; "
        "cat /usr/local/Ascend/driver/version.info 2>&1 || true"
    )
    with pytest.raises(ValueError):
        driver_files.driver_files_command(["/a\nrm -rf /"])


def test_driver_ok():
    r = driver_files.judge_driver_files("a2-1", fixture("driver_files/ok.txt"), DRIVER_PATHS)
    assert r.ok
    assert r.message == (
        "node a2-1: check driver-files: expected 5 driver paths present and a driver version in "
        "/usr/local/Ascend/driver/version.info, saw all present, driver 24.1.rc2"
    )
    assert r.detail["version_fields"]["ascendhal_version"] == "7.35.23"


def test_driver_missing():
    r = driver_files.judge_driver_files("a2-1", fixture("driver_files/missing.txt"), DRIVER_PATHS)
    assert not r.ok
    assert r.seen == (
        "missing /usr/local/bin/npu-smi, /usr/local/Ascend/driver/version.info; "
        "no driver version (cat: /usr/local/Ascend/driver/version.info: No such file or directory)"
    )


def test_driver_version_prefers_package_version():
    out = "=== version.info\nVersion=7.35.23\npackage_version=26.0.rc1\n"
    assert driver_files.parse_driver_files(out).version == "26.0.rc1"
    assert driver_files.parse_driver_files("=== version.info\nVersion=24.1.rc2\n").version == "24.1.rc2"


def test_driver_unreported_path_counts_as_missing():
    out = "present /usr/local/dcmi\n=== version.info\nVersion=24.1.rc2\n"
    r = driver_files.judge_driver_files("n", out, ["/usr/local/dcmi", "/etc/ascend_install.info"])
    assert r.seen == "missing /etc/ascend_install.info"


def test_driver_garbage():
    r = driver_files.judge_driver_files("n", "bash: syntax error near unexpected token\n", DRIVER_PATHS)
    assert r.seen == "unparseable output: bash: syntax error near unexpected token"


def test_driver_command_runs_under_sh(tmp_path):
    present = tmp_path / "with space"
    present.mkdir()
    vinfo = tmp_path / "version.info"
    vinfo.write_text("Version=24.1.rc2\nascendhal_version=7.35.23\n")
    paths = [str(present), str(tmp_path / "absent")]
    res = run_sh(driver_files.driver_files_command(paths, version_file=str(vinfo)))
    assert res.returncode == 0
    r = driver_files.judge_driver_files("n", res.stdout, paths, version_file=str(vinfo))
    assert r.seen == f"missing {tmp_path / 'absent'}"
