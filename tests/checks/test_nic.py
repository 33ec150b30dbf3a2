"""`ip -o addr show`: nic-ip and `nic: auto`."""

from __future__ import annotations

import pytest
from hoststubs import fixture

from checks import nic


def test_ip_command():
    assert nic.ip_addr_command() == "ip -o addr show 2>&1 || true"


def test_nic_ipv4_and_ipv6_ok():
    ip = fixture("nic/ip_addr.txt")
    r4 = nic.judge_nic_ip("a2-1", ip, "enp189s0f0", "10.0.0.5")
    assert r4.ok
    assert r4.message == "node a2-1: check nic-ip: expected enp189s0f0 to hold 10.0.0.5, saw enp189s0f0 holds 10.0.0.5"
    r6 = nic.judge_nic_ip("a2-1", ip, "enp189s0f0", "fd00:10:0:0::5")  # non-canonical form
    assert r6.ok and r6.seen == "enp189s0f0 holds fd00:10::5"


def test_nic_vlan_with_parent_suffix():
    assert nic.judge_nic_ip("a2-1", fixture("nic/ip_addr.txt"), "bond0.100", "10.9.0.5").ok


def test_nic_ip_on_other_nic():
    r = nic.judge_nic_ip("a2-1", fixture("nic/ip_addr.txt"), "enp189s0f1", "10.0.0.5")
    assert r.message == "node a2-1: check nic-ip: expected enp189s0f1 to hold 10.0.0.5, saw 10.0.0.5 is on enp189s0f0"


def test_nic_holds_other_ip():
    r = nic.judge_nic_ip("a2-1", fixture("nic/ip_addr.txt"), "docker0", "10.0.0.9")
    assert r.seen == "docker0 holds 172.17.0.1/16"


def test_nic_unknown():
    r = nic.judge_nic_ip("a2-1", fixture("nic/ip_addr.txt"), "eth9", "10.1.1.1")
    assert r.seen == "no interface named eth9 with an address, and no interface holds 10.1.1.1"


def test_nic_bad_config_and_garbage():
    assert nic.judge_nic_ip("n", fixture("nic/ip_addr.txt"), "eth0", "10.0.0.300").seen == (
        "configured IP '10.0.0.300' is not an IP address"
    )
    assert nic.judge_nic_ip("n", "Command 'ip' not found\n", "eth0", "10.0.0.5").seen == (
        "unparseable output: Command 'ip' not found"
    )


def test_discover_nic():
    ip = fixture("nic/ip_addr.txt")
    assert nic.discover_nic(ip, "10.0.0.5") == "enp189s0f0"
    assert nic.discover_nic(ip, "fd00:10::5") == "enp189s0f0"
    assert nic.discover_nic(ip, "10.9.0.5") == "bond0.100"


@pytest.mark.parametrize(
    "out,ip,msg",
    [
        ("nic/ip_addr.txt", "10.1.1.1", "no network interface holds 10.1.1.1"),
        (
            "nic/ip_addr.txt",
            "192.168.1.5",
            "192.168.1.5 is held by several interfaces (br-lab, enp189s0f1); set nic explicitly",
        ),
        ("nic/ip_addr.txt", "nope", "not an IP address: 'nope'"),
        (None, "10.0.0.5", "cannot find the NIC holding 10.0.0.5: empty output"),
    ],
)
def test_discover_nic_errors(out, ip, msg):
    text = fixture(out) if out else ""
    with pytest.raises(nic.NicDiscoveryError) as ei:
        nic.discover_nic(text, ip)
    assert str(ei.value) == msg
    assert isinstance(ei.value, ValueError)
