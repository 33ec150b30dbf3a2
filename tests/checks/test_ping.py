"""`hccn_tool -ping`: npu-ping."""

from __future__ import annotations

import pytest
from hoststubs import HCCN_STUB, fixture, run_sh, stub

from checks import ping

PEERS = {"a2-2": {0: "10.20.1.11", 1: "10.20.1.12"}}


def test_ping_targets():
    t = ping.ping_targets(2, PEERS)
    assert [(x.local_npu, x.peer_node, x.peer_npu, x.peer_ip) for x in t] == [
        (0, "a2-2", 0, "10.20.1.11"),
        (0, "a2-2", 1, "10.20.1.12"),
        (1, "a2-2", 0, "10.20.1.11"),
        (1, "a2-2", 1, "10.20.1.12"),
    ]
    same = ping.ping_targets([0, 1], PEERS, same_index_only=True)
    assert [(x.local_npu, x.peer_npu) for x in same] == [(0, 0), (1, 1)]


def test_ping_command():
    cmd = ping.ping_command(
        [ping.PingTarget(0, "a2-2", 3, "10.20.1.14"), ping.PingTarget(1, "a2-2", 3, "fd00::14")], hccn_tool="hccn_tool"
    )
    assert cmd == (
        "H=hccn_tool; echo '=== ping 0 a2-2 3 10.20.1.14'; \"$H\" -i 0 -ping -g address 10.20.1.14 2>&1; "
        "echo '=== ping 1 a2-2 3 fd00::14'; \"$H\" -i 1 -ping -inet6 -g ipv6_address fd00::14 2>&1; "
        'echo "=== end"; true'
    )


@pytest.mark.parametrize(
    "target",
    [ping.PingTarget(0, "a2 2", 0, "10.0.0.1"), ping.PingTarget(0, "a2-2", 0, "10.0.0.1; reboot")],
)
def test_ping_command_rejects_unsafe_values(target):
    with pytest.raises(ValueError):
        ping.ping_command([target])


def test_ping_all_ok():
    r = ping.judge_ping("a2-1", fixture("ping/ok.txt"), ping.ping_targets(2, PEERS))
    assert r.ok
    assert r.message == "node a2-1: check npu-ping: expected all 4 NPU pairs reachable, saw 4/4 reachable"


def test_ping_loss_names_node_npu_peer_and_ip():
    r = ping.judge_ping("a2-1", fixture("ping/loss.txt"), ping.ping_targets(2, PEERS))
    assert not r.ok
    assert r.message == (
        "node a2-1: check npu-ping: expected all 4 NPU pairs reachable, saw 2/4 reachable "
        "(NPU 1 -> a2-2 NPU 0 10.20.1.11: 3 packets transmitted, 2 received, 33.33% packet loss; "
        "NPU 1 -> a2-2 NPU 1 10.20.1.12: 3 packets transmitted, 0 received, 100.00% packet loss)"
    )


def test_ping_missing_result():
    r = ping.judge_ping("a2-1", fixture("ping/ok.txt"), ping.ping_targets(3, PEERS))
    assert r.seen == (
        "4/6 reachable (NPU 2 -> a2-2 NPU 0 10.20.1.11: no result; NPU 2 -> a2-2 NPU 1 10.20.1.12: no result)"
    )


def test_ping_without_targets_judges_what_ran():
    assert ping.judge_ping("a2-1", fixture("ping/loss.txt")).seen.startswith("2/4 reachable (NPU 1 -> a2-2 NPU 0")


def test_ping_hccs_style_and_errors():
    out = (
        "=== ping 0 a3-2 0 10.30.0.1\ndevice 0 PING 10.30.0.1\nThis pkt ping success!\nThis pkt ping success!\n"
        "=== ping 0 a3-2 1 10.30.0.2\ndevice 0 PING 10.30.0.2\nThis pkt send fail!\nThis pkt ping success!\n"
        "=== ping 1 a3-2 0 10.30.0.1\nhccn_tool is busy, please try again\n=== end\n"
    )
    r = ping.judge_ping("a3-1", out)
    assert r.seen == (
        "1/3 reachable (NPU 0 -> a3-2 NPU 1 10.30.0.2: 1 of 2 packets answered; "
        "NPU 1 -> a3-2 NPU 0 10.30.0.1: unparseable output: hccn_tool is busy, please try again)"
    )


def test_ping_garbage_and_empty_targets():
    r = ping.judge_ping("a2-1", fixture("hccn/garbage.txt"), ping.ping_targets(2, PEERS))
    assert r.message == (
        "node a2-1: check npu-ping: expected all 4 NPU pairs reachable, "
        "saw unparseable output: <html><body>502 Bad Gateway</body></html>"
    )
    assert ping.judge_ping("a2-1", "H=x\n=== end\n", []).ok


def test_ping_command_runs_under_sh(tmp_path):
    tool = stub(tmp_path / "hccn_tool", HCCN_STUB)
    targets = ping.ping_targets(2, {"a2-2": {0: "10.20.1.11"}, "a2-3": {0: "fd00::21"}})
    res = run_sh(ping.ping_command(targets, hccn_tool=tool))
    assert res.returncode == 0, res.stderr
    r = ping.judge_ping("a2-1", res.stdout, targets)
    assert r.ok, r.message
    assert r.seen == "4/4 reachable"
