"""CheckResult, and every tool command under sh without its tool."""

from __future__ import annotations

import pytest
from hoststubs import run_sh

from checks import common, docker, nic, npu_smi


def test_message_format():
    r = common.CheckResult("a2-1", "npu-health", False, "8 healthy NPUs", "7 (NPU 3 health Alarm)", {})
    assert r.message == "node a2-1: check npu-health: expected 8 healthy NPUs, saw 7 (NPU 3 health Alarm)"


def test_check_result_is_frozen_and_hashable():
    r = common.CheckResult("a", "c", True, "x", "y", {"k": [1]})
    with pytest.raises(AttributeError):
        r.ok = False  # type: ignore[misc]
    assert hash(r) == hash(common.CheckResult("a", "c", True, "x", "y", {"other": 2}))


def test_missing_tools_exit_zero(tmp_path):
    for cmd in (npu_smi.npu_smi_command(), docker.docker_version_command(), nic.ip_addr_command()):
        res = run_sh(cmd, env_path=str(tmp_path))
        assert res.returncode == 0
        assert res.stdout.strip()  # the error text lands in stdout for the judge
    assert not docker.judge_docker("n", run_sh(docker.docker_version_command(), env_path=str(tmp_path)).stdout).ok
