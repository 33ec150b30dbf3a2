"""`hccn_tool`: npu-network and npu-tls across nodes."""

from __future__ import annotations

import pytest
from hoststubs import HCCN_STUB, fixture, run_sh, stub

from checks import hccn


def messages(results):
    return [r.message for r in results]


def test_hccn_command_shape():
    cmd = hccn.hccn_command(8)
    assert cmd.startswith("H=$(command -v hccn_tool || echo /usr/local/Ascend/driver/tools/hccn_tool); ")
    assert 'while [ "$i" -lt 8 ]' in cmd
    for q in ("-link -g", "-net_health -g", "-ip -g", "-tls -g"):
        assert f'"$H" -i "$i" {q} 2>&1' in cmd
    assert hccn.hccn_command(16, hccn_tool="/opt/x y/hccn_tool").startswith("H='/opt/x y/hccn_tool'; ")
    with pytest.raises(ValueError):
        hccn.hccn_command(0)


def test_parse_hccn_values():
    p = hccn.parse_hccn(fixture("hccn/a2_healthy.txt"))
    assert sorted(p) == list(range(8))
    n = p[3]
    assert (n.link, n.net_health, n.ipaddr, n.netmask, n.tls_switch) == (
        "UP",
        "Success",
        "10.20.0.14",
        "255.255.255.0",
        "0",
    )


def test_npu_network_healthy():
    r = hccn.judge_npu_network("a2-1", fixture("hccn/a2_healthy.txt"), 8)
    assert r.ok
    assert r.message == (
        "node a2-1: check npu-network: expected 8 NPUs with link UP, net health Success and an IP, "
        "saw 8 NPUs up, healthy, with IPs"
    )
    assert r.detail["npus"][7]["ip"] == "10.20.0.18"


def test_npu_network_link_down():
    r = hccn.judge_npu_network("a2-1", fixture("hccn/a2_link_down.txt"), 8)
    assert r.message == (
        "node a2-1: check npu-network: expected 8 NPUs with link UP, net health Success and an IP, saw NPU 2 link DOWN"
    )


def test_npu_network_fault_and_no_ip():
    r = hccn.judge_npu_network("a2-1", fixture("hccn/a2_net_fault.txt"), 8)
    assert r.seen == "NPU 4 net health Fault; NPU 6 no IP (Get ipconf failed, because no ip was preset there!)"


def test_npu_network_missing_npus():
    r = hccn.judge_npu_network("a3-1", fixture("hccn/a2_healthy.txt"), 10)
    assert r.seen == "NPU 8 not reported; NPU 9 not reported"


def test_npu_network_tool_missing_and_garbage():
    r = hccn.judge_npu_network("a2-1", fixture("hccn/tool_missing.txt"), 8)
    assert r.seen == (
        "unparseable output: sh: 1: /usr/local/Ascend/driver/tools/hccn_tool: not found sh: 1: /usr/local/Asc"
    )
    r = hccn.judge_npu_network("a2-1", fixture("hccn/garbage.txt"), 8)
    assert r.seen == "unparseable output: <html><body>502 Bad Gateway</body></html>"


def test_npu_network_partial_garbage_in_one_section():
    text = fixture("hccn/a2_healthy.txt").replace("link status: UP", "hccn_tool is busy, please try again", 1)
    r = hccn.judge_npu_network("a2-1", text, 8)
    assert r.seen == "NPU 0 link unknown (hccn_tool is busy, please try again)"


def test_tls_consistent():
    res = hccn.judge_tls_consistency(
        {"a2-1": fixture("hccn/a2_healthy.txt"), "a2-2": fixture("hccn/a2_peer_healthy.txt")}
    )
    assert all(r.ok for r in res)
    assert messages(res) == [
        "node a2-1: check npu-tls: expected tls switch 0 on all NPUs (reference node), saw tls switch 0 on NPU 0-7",
        "node a2-2: check npu-tls: expected tls switch 0 as on node a2-1, saw tls switch 0 on NPU 0-7",
    ]


def test_tls_mismatch_names_both_nodes_and_values():
    res = hccn.judge_tls_consistency(
        {
            "a2-1": fixture("hccn/a2_healthy.txt"),
            "a2-2": fixture("hccn/a2_tls_on.txt"),
            "a2-3": fixture("hccn/a2_tls_mixed.txt"),
        }
    )
    assert [r.ok for r in res] == [True, False, False]
    assert res[1].message == (
        "node a2-2: check npu-tls: expected tls switch 0 as on node a2-1, saw NPU 0-7 switch 1 (node a2-1 has switch 0)"
    )
    assert res[2].message == (
        "node a2-3: check npu-tls: expected tls switch 0 as on node a2-1, "
        "saw NPU 0-5 switch 0, NPU 6-7 switch 1 (node a2-1 has switch 0)"
    )


def test_tls_reference_skips_inconsistent_first_node():
    res = hccn.judge_tls_consistency({"a2-3": fixture("hccn/a2_tls_mixed.txt"), "a2-2": fixture("hccn/a2_tls_on.txt")})
    assert res[0].message == (
        "node a2-3: check npu-tls: expected tls switch 1 as on node a2-2, "
        "saw NPU 0-5 switch 0, NPU 6-7 switch 1 (node a2-2 has switch 1)"
    )
    assert res[1].ok


def test_tls_unparseable_node():
    res = hccn.judge_tls_consistency({"a2-1": fixture("hccn/tool_missing.txt"), "a2-2": fixture("hccn/a2_tls_on.txt")})
    assert res[0].message == (
        "node a2-1: check npu-tls: expected tls switch 1 as on node a2-2, saw unparseable output: "
        "sh: 1: /usr/local/Ascend/driver/tools/hccn_tool: not found sh: 1: /usr/local/Asc"
    )


def test_tls_alternative_spellings():
    # Inferred variants: tolerated, not documented by Huawei.
    assert hccn.parse_hccn("=== npu 0 tls\ntls switch: 1\n")[0].tls_switch == "1"
    assert hccn.parse_hccn("=== npu 0 tls\ntls_enable=0\n")[0].tls_switch == "0"
    assert hccn.parse_hccn("=== npu 0 tls\ndev_id:0, tls switch[ 1 ](0:disable, 1:enable)\n")[0].tls_switch == "1"


def test_hccn_command_runs_under_sh(tmp_path):
    tool = stub(tmp_path / "hccn tool", HCCN_STUB)
    res = run_sh(hccn.hccn_command(2, hccn_tool=tool))
    assert res.returncode == 0, res.stderr
    r = hccn.judge_npu_network("n", res.stdout, 2)
    assert r.seen == "NPU 1 link DOWN"
    assert hccn.parse_hccn(res.stdout)[1].ipaddr == "10.20.0.12"


def test_hccn_command_finds_tool_on_path(tmp_path):
    stub(tmp_path / "hccn_tool", HCCN_STUB)
    res = run_sh(hccn.hccn_command(1), env_path=f"{tmp_path}:/usr/bin:/bin")
    assert hccn.judge_npu_network("n", res.stdout, 1).ok


def test_hccn_command_without_tool_exits_zero(tmp_path):
    res = run_sh(hccn.hccn_command(2), env_path=str(tmp_path))
    assert res.returncode == 0
    r = hccn.judge_npu_network("n", res.stdout, 2)
    assert not r.ok and r.seen.startswith("unparseable output: ")
