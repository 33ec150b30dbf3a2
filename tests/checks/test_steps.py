"""Each step's judge as `python -m checks` applies it: the report a passing step prints, the one
line a failing one ends with."""

from __future__ import annotations

import pytest
from hoststubs import fixture

from checks.steps import STEPS, StepFailed, node_script

OURS = "=== container /vllm-ascend stack=a2 /dev/davinci0\n"


def judge(step: str, spec: dict, output: str) -> dict:
    spec = {"node": "a2-0", "nodes": ["a2-0"], **spec}
    return STEPS[step].judge(spec, {"a2-0": output})


def test_npu_idle_spares_the_stacks_own_container_and_flags_any_other_process():
    spec = {"npus": 8, "label": "deepseek-r1-ascend.stack", "stack": "a2"}
    busy = fixture("npu_smi/a2_busy.txt")
    assert judge("npu-idle", spec, busy + "=== npu-free\n" + OURS) == {
        "seen": "this stack's container vllm-ascend holds the NPUs"
    }
    with pytest.raises(StepFailed, match=r"^node a2-0: check npu-idle: expected no processes on any NPU, saw 3"):
        judge("npu-idle", spec, busy + "=== npu-free\n")
    assert "npu-smi info" in node_script("npu-idle", spec) and "docker ps" in node_script("npu-idle", spec)


def test_nic_auto_reports_the_interface_it_found():
    out = "2: enp7s0    inet 192.0.2.11/24 scope global enp7s0\\ valid_lft forever\n"
    assert judge("nic-ip", {"nic": "auto", "auto": "auto", "ip": "192.0.2.11"}, out)["nic"] == "enp7s0"
    with pytest.raises(StepFailed, match="expected one interface holding 192.0.2.12, saw no network interface"):
        judge("nic-ip", {"nic": "auto", "auto": "auto", "ip": "192.0.2.12"}, out)


def test_driver_files_reports_the_version():
    spec = {"paths": ["/usr/local/dcmi"], "versionFile": "/v"}
    out = "present /usr/local/dcmi\n=== version.info\nVersion=24.1.rc2\n"
    assert judge("driver-files", spec, out)["version"] == "24.1.rc2"


def test_tls_is_judged_across_the_nodes_queried_together():
    on, off = fixture("hccn/a2_tls_on.txt"), fixture("hccn/a2_healthy.txt")
    spec = {"node": "a2-1", "nodes": ["a2-0", "a2-1"], "npus": 8}
    with pytest.raises(StepFailed, match="^node a2-1: check npu-tls: expected tls switch 0 as on node a2-0"):
        STEPS["npu-tls"].judge(spec, {"a2-0": off, "a2-1": on})
    assert STEPS["npu-tls"].judge(spec, {"a2-0": on, "a2-1": on})["seen"].startswith("tls switch 1")


def test_a_service_step_names_the_way_forward():
    with pytest.raises(StepFailed) as failed:
        judge("smoke-test", {}, '{"error": "x"}\n503 0.01\n')
    assert (
        str(failed.value)
        == 'smoke test: /v1/completions answered HTTP 503: {"error": "x"}; run `pulumi up` again once fixed'
    )


def test_a_node_sharing_the_weights_directory_fails_until_the_download_is_there():
    spec = {"image": "i", "weightsDir": "/w", "model": "m/x", "useModelscope": True, "mode": "verify"}
    assert judge("stage-weights", spec, "already staged: m/x\n") == {"result": "already staged: m/x"}
    with pytest.raises(StepFailed, match="weights staging: the download did not finish"):
        judge("stage-weights", spec, "not staged: no .staged-m_x in the shared weights directory /w\n")
