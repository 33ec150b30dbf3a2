"""sim/fake_host.py: fake Ascend host root with device nodes (needs root)."""

import os
import stat
import subprocess
import sys

import pytest
from simhelpers import REPO

FAKE_HOST = REPO / "sim" / "fake_host.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def run(*args):
    return subprocess.run([sys.executable, str(FAKE_HOST), *map(str, args)], capture_output=True, text=True, timeout=30)


def test_create_idempotent_and_remove(tmp_path):
    root = tmp_path / "node0"
    for _ in range(2):
        r = run(root, "--npus", "3")
        assert r.returncode == 0, r.stderr
    for n in ("davinci0", "davinci1", "davinci2", "davinci_manager", "devmm_svm", "hisi_hdc"):
        st = os.lstat(root / "dev" / n)
        assert stat.S_ISCHR(st.st_mode)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert not (root / "dev" / "davinci3").exists()
    assert (root / "usr/local/dcmi").is_dir()
    assert (root / "usr/local/Ascend/driver/lib64").is_dir()
    assert "Version=" in (root / "usr/local/Ascend/driver/version.info").read_text()
    assert (root / "etc/ascend_install.info").is_file()
    assert "address_2=" in (root / "etc/hccn.conf").read_text()
    for tool in ("usr/bin/hccn_tool", "usr/local/Ascend/driver/tools/hccn_tool", "usr/local/bin/npu-smi"):
        assert os.access(root / tool, os.X_OK)
    out = subprocess.run([str(root / "usr/local/bin/npu-smi")], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "910B" in out.stdout
    # shrinking keeps the count exact
    assert run(root, "--npus", "1").returncode == 0
    assert sorted(p.name for p in (root / "dev").glob("davinci[0-9]*")) == ["davinci0"]
    assert run(root, "--remove").returncode == 0
    assert not root.exists()
