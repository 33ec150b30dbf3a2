"""Tests for checks/hostchecks.py.

Fixtures live in tests/fixtures/hostchecks/.  Where they come from:

* npu-smi tables: column layout, separators, the A3 "Chip  Phy-ID" header
  and two-chips-per-NPU rows, and the process table ("No running processes
  found in NPU N" / "| npu chip | pid | name | memory |") follow npu-smi
  25.x output as published in vllm-ascend bug reports.  Inferred: the
  wording of non-OK Health values ("Warning", "Alarm") -- only "OK" appears
  in the samples we found; the judge treats anything but OK as unhealthy.
  Process names are often blank in container setups; rows with names are
  inferred from the same layout.
* hccn_tool: "link status: UP|DOWN", "net health status: Success|Fault",
  "ipaddr:<ip>" / "netmask:<mask>", "Get ipconf failed, because no ip was
  preset there!" and the TLS line "dev_id:0, tls switch[0](0:disable,
  1:enable), tls preconfigured[1]..." follow Huawei/MindCluster and
  vllm-ascend documentation.  The "=== npu N <query>" section headers are
  our own (printed by hccn_command).  The certificate lines after the TLS
  switch line use made-up issuer data.
* hccn_tool -ping: "device 0 PING <ip>", "recv seq=0,time=...ms",
  "recv time out seq=0", "3 packets transmitted, 2 received, 33.33% packet
  loss" follow a published Ascend multi-node guide.  The "=== ping ..."
  headers are ours (printed by ping_command).
* driver version.info: key=value lines (Version=, package_version=, ...) as
  printed by `cat /usr/local/Ascend/driver/version.info` in public reports.
* ip -o addr / df -Pk / ls -1 /dev: standard iproute2 / POSIX / coreutils
  formats; addresses and sizes are invented.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from checks import hostchecks as hc

FIX = Path(__file__).resolve().parent / "fixtures" / "hostchecks"


def fx(name: str) -> str:
    return (FIX / name).read_text()


def messages(results):
    return [r.message for r in results]


# ---------------------------------------------------------------------------
# CheckResult / HostCheckFailed
# ---------------------------------------------------------------------------


def test_message_format():
    r = hc.CheckResult("a2-1", "npu-health", False, "8 healthy NPUs", "7 (NPU 3 health Alarm)", {})
    assert r.message == "node a2-1: check npu-health: expected 8 healthy NPUs, saw 7 (NPU 3 health Alarm)"


def test_check_result_is_frozen_and_hashable():
    r = hc.CheckResult("a", "c", True, "x", "y", {"k": [1]})
    with pytest.raises(AttributeError):
        r.ok = False  # type: ignore[misc]
    assert hash(r) == hash(hc.CheckResult("a", "c", True, "x", "y", {"other": 2}))


def test_raise_if_failed_lists_every_failure():
    results = hc.judge_npu_smi("a2-1", fx("npu_smi_a2_alarm.txt"), 8) + [hc.judge_docker("a2-2", "")]
    with pytest.raises(hc.HostCheckFailed) as ei:
        hc.raise_if_failed(results)
    assert str(ei.value) == (
        "2 host checks failed:\n"
        "  - node a2-1: check npu-health: expected 8 healthy NPUs, saw 7 (NPU 3 health Alarm)\n"
        "  - node a2-2: check docker: expected docker daemon reachable, saw empty output from docker version"
    )
    assert [r.check for r in ei.value.results] == ["npu-health", "docker"]


def test_raise_if_failed_passes_through_when_all_ok():
    ok = hc.judge_npu_smi("a2-1", fx("npu_smi_a2_healthy.txt"), 8)
    assert hc.raise_if_failed(iter(ok)) == ok


def test_single_failure_message_is_singular():
    with pytest.raises(hc.HostCheckFailed, match=r"^1 host check failed:\n"):
        hc.raise_if_failed([hc.judge_docker("n", "")])


# ---------------------------------------------------------------------------
# 1. npu-smi info
# ---------------------------------------------------------------------------


def test_npu_smi_command():
    assert hc.npu_smi_command() == "npu-smi info 2>&1 || true"


def test_parse_npu_smi_a2():
    info = hc.parse_npu_smi(fx("npu_smi_a2_healthy.txt"))
    assert info is not None
    assert len(info.devices) == 8
    d = info.devices[2]
    assert (d.npu_id, d.chip, d.phy_id, d.name, d.health) == (2, 0, None, "910B3", "OK")
    assert (d.hbm_used_mb, d.hbm_total_mb) == (3402, 65536)
    assert d.device_id == 2
    assert info.processes == ()
    assert info.idle_npus == tuple(range(8))


def test_parse_npu_smi_a3_counts_chips():
    info = hc.parse_npu_smi(fx("npu_smi_a3_healthy.txt"))
    assert info is not None
    assert len(info.devices) == 16
    assert sorted({d.npu_id for d in info.devices}) == list(range(8))
    last = info.devices[-1]
    assert (last.npu_id, last.chip, last.phy_id, last.device_id, last.name) == (7, 1, 15, 15, "Ascend910")


def test_npu_smi_a2_healthy():
    assert messages(hc.judge_npu_smi("a2-1", fx("npu_smi_a2_healthy.txt"), 8)) == [
        "node a2-1: check npu-health: expected 8 healthy NPUs, saw 8",
        "node a2-1: check npu-idle: expected no processes on any NPU, saw no processes",
    ]
    assert all(r.ok for r in hc.judge_npu_smi("a2-1", fx("npu_smi_a2_healthy.txt"), 8))


def test_npu_smi_a3_healthy():
    res = hc.judge_npu_smi("a3-1", fx("npu_smi_a3_healthy.txt"), 16)
    assert all(r.ok for r in res)
    assert res[0].message == "node a3-1: check npu-health: expected 16 healthy NPUs, saw 16"


def test_npu_smi_alarm():
    health, idle = hc.judge_npu_smi("a2-1", fx("npu_smi_a2_alarm.txt"), 8)
    assert not health.ok and idle.ok
    assert health.message == "node a2-1: check npu-health: expected 8 healthy NPUs, saw 7 (NPU 3 health Alarm)"
    assert health.detail["devices"][3]["health"] == "Alarm"


def test_npu_smi_processes_named():
    health, idle = hc.judge_npu_smi("a2-1", fx("npu_smi_a2_busy.txt"), 8)
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
    health, idle = hc.judge_npu_smi("a3-2", fx("npu_smi_a3_busy_warning.txt"), 16)
    assert health.message == (
        "node a3-2: check npu-health: expected 16 healthy NPUs, saw 15 (NPU 3 chip 1 (device 7) health Warning)"
    )
    assert idle.message == (
        "node a3-2: check npu-idle: expected no processes on any NPU, saw 1 process "
        "(NPU 3 chip 1 (device 7): pid 3328327 VLLMWorker_TP, 50119 MB)"
    )


def test_npu_smi_wrong_server_type():
    health, _ = hc.judge_npu_smi("a3-1", fx("npu_smi_a3_healthy.txt"), 8)
    assert not health.ok
    assert health.message == (
        "node a3-1: check npu-health: expected 8 healthy NPUs, saw 16 (16 devices listed on 8 NPU ids)"
    )
    health, _ = hc.judge_npu_smi("a2-1", fx("npu_smi_a2_healthy.txt"), 16)
    assert health.seen == "8 (8 devices listed on 8 NPU ids)"


def test_npu_smi_garbage():
    res = hc.judge_npu_smi("a2-1", fx("npu_smi_garbage.txt"), 8)
    assert messages(res) == [
        "node a2-1: check npu-health: expected 8 healthy NPUs, "
        "saw unparseable output: dcmi module initialize failed. ret is -8005",
        "node a2-1: check npu-idle: expected no processes on any NPU, "
        "saw unparseable output: dcmi module initialize failed. ret is -8005",
    ]


def test_npu_smi_missing_process_table_is_not_idle():
    text = fx("npu_smi_a2_healthy.txt").split("| NPU     Chip")[0]
    health, idle = hc.judge_npu_smi("a2-1", text, 8)
    assert health.ok
    assert not idle.ok
    assert idle.seen == "no process table in npu-smi output"


@pytest.mark.parametrize(
    "garbage",
    ["", None, b"\xff\xfe binary", "|||||\n| 0 |\n", "+====+\n| a | b | c |\n", "x" * 500, "| 0     910B3 | OK |\n"],
)
def test_npu_smi_never_raises(garbage):
    res = hc.judge_npu_smi("n", garbage, 8)  # type: ignore[arg-type]
    assert [r.ok for r in res] == [False, False]


def test_unparseable_truncates_to_80_chars():
    assert hc.unparseable("a\nb   c") == "unparseable output: a b c"
    assert hc.unparseable("y" * 200) == "unparseable output: " + "y" * 80
    assert hc.unparseable("  \n") == "empty output"


# ---------------------------------------------------------------------------
# 2. /dev
# ---------------------------------------------------------------------------


def test_dev_command():
    assert hc.dev_list_command() == "ls -1 /dev 2>&1 || true"


def test_dev_ok_a2_and_a3():
    r = hc.judge_dev_davinci("a2-1", fx("dev_a2_ok.txt"), 8)
    assert r.ok
    assert r.message == (
        "node a2-1: check dev-davinci: expected 8 /dev/davinciN devices plus davinci_manager, devmm_svm, hisi_hdc, "
        "saw 8 davinciN devices (0-7)"
    )
    assert hc.judge_dev_davinci("a3-1", fx("dev_a3_ok.txt"), 16).ok


def test_dev_degraded():
    r = hc.judge_dev_davinci("a2-1", fx("dev_a2_degraded.txt"), 8)
    assert not r.ok
    assert r.seen == "7 davinciN devices (0-6); missing /dev/devmm_svm, /dev/hisi_hdc"
    assert r.detail["missing_management"] == ["devmm_svm", "hisi_hdc"]


def test_dev_garbage():
    r = hc.judge_dev_davinci("a2-1", fx("dev_garbage.txt"), 8)
    assert r.seen == "unparseable output: ls: cannot open directory '/dev': Permission denied"
    assert not hc.judge_dev_davinci("a2-1", "", 8).ok


def test_dev_no_npus_at_all():
    r = hc.judge_dev_davinci("a2-1", "null\ntty\nzero\n", 8)
    assert r.seen == "0 davinciN devices; missing /dev/davinci_manager, /dev/devmm_svm, /dev/hisi_hdc"


# ---------------------------------------------------------------------------
# 3. Driver files
# ---------------------------------------------------------------------------

DRIVER_PATHS = [
    "/usr/local/dcmi",
    "/usr/local/bin/npu-smi",
    "/usr/local/Ascend/driver/lib64",
    "/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info",
]


def test_driver_command_quotes_paths():
    cmd = hc.driver_files_command(["/usr/local/dcmi", "/opt/my dir/x"])
    assert cmd == (
        'for p in /usr/local/dcmi \'/opt/my dir/x\'; do if [ -e "$p" ]; then echo "present $p"; '
        "else echo \"missing $p\"; fi; done; echo '=== version.info'; "
        "cat /usr/local/Ascend/driver/version.info 2>&1 || true"
    )
    with pytest.raises(ValueError):
        hc.driver_files_command(["/a\nrm -rf /"])


def test_driver_ok():
    r = hc.judge_driver_files("a2-1", fx("driver_ok.txt"), DRIVER_PATHS)
    assert r.ok
    assert r.message == (
        "node a2-1: check driver-files: expected 5 driver paths present and a driver version in "
        "/usr/local/Ascend/driver/version.info, saw all present, driver 24.1.rc2"
    )
    assert r.detail["version_fields"]["ascendhal_version"] == "7.35.23"


def test_driver_missing():
    r = hc.judge_driver_files("a2-1", fx("driver_missing.txt"), DRIVER_PATHS)
    assert not r.ok
    assert r.seen == (
        "missing /usr/local/bin/npu-smi, /usr/local/Ascend/driver/version.info; "
        "no driver version (cat: /usr/local/Ascend/driver/version.info: No such file or directory)"
    )


def test_driver_version_prefers_package_version():
    out = "=== version.info\nVersion=7.35.23\npackage_version=26.0.rc1\n"
    assert hc.parse_driver_files(out).version == "26.0.rc1"
    assert hc.parse_driver_files("=== version.info\nVersion=24.1.rc2\n").version == "24.1.rc2"


def test_driver_unreported_path_counts_as_missing():
    out = "present /usr/local/dcmi\n=== version.info\nVersion=24.1.rc2\n"
    r = hc.judge_driver_files("n", out, ["/usr/local/dcmi", "/etc/ascend_install.info"])
    assert r.seen == "missing /etc/ascend_install.info"


def test_driver_garbage():
    r = hc.judge_driver_files("n", "bash: syntax error near unexpected token\n", DRIVER_PATHS)
    assert r.seen == "unparseable output: bash: syntax error near unexpected token"


# ---------------------------------------------------------------------------
# 4. Docker
# ---------------------------------------------------------------------------


def test_docker_command():
    assert hc.docker_version_command() == "docker version --format '{{.Server.Version}}' 2>&1 || true"


@pytest.mark.parametrize(
    "out,ok,seen",
    [
        ("27.3.1\n", True, "server 27.3.1"),
        ("24.0.7-ce\n", True, "server 24.0.7-ce"),
        ("", False, "empty output from docker version"),
        ("\n\n", False, "empty output from docker version"),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
            False,
            "docker error: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?",
        ),
        ("sh: 1: docker: not found\n", False, "docker error: sh: 1: docker: not found"),
        ("\n27.3.1\nextra\n", False, "docker error: 27.3.1 extra"),
    ],
)
def test_docker(out, ok, seen):
    r = hc.judge_docker("a2-1", out)
    assert (r.ok, r.seen) == (ok, seen)


def test_docker_message():
    assert hc.judge_docker("a2-1", "permission denied while trying to connect\n").message == (
        "node a2-1: check docker: expected docker daemon reachable, "
        "saw docker error: permission denied while trying to connect"
    )


# ---------------------------------------------------------------------------
# 5. Free space
# ---------------------------------------------------------------------------


def test_df_command():
    assert hc.df_command("/data/my models") == (
        "if [ -d '/data/my models' ]; then df -Pk '/data/my models' 2>&1; else echo missing '/data/my models'; fi; true"
    )


def test_df_ok():
    r = hc.judge_free_space("a2-1", fx("df_ok.txt"), "/data/models", 700)
    assert r.ok
    assert r.message == (
        "node a2-1: check weights-disk: expected at least 700 GiB free in /data/models, "
        "saw 5997.4 GiB free on /data (/dev/nvme1n1)"
    )


def test_df_low():
    r = hc.judge_free_space("a2-1", fx("df_low.txt"), "/data/models", 700)
    assert not r.ok
    assert r.seen == "100.0 GiB free on / (/dev/mapper/vg0-root)"


def test_df_threshold_is_inclusive():
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 2097152 1048576 1048576 50% /w\n"
    assert hc.judge_free_space("n", out, "/w", 1).ok
    assert not hc.judge_free_space("n", out, "/w", 1.5).ok


def test_df_missing_dir():
    r = hc.judge_free_space("a2-1", fx("df_missing.txt"), "/data/models", 700)
    assert r.message == (
        "node a2-1: check weights-disk: expected at least 700 GiB free in /data/models, "
        "saw directory /data/models does not exist"
    )


def test_df_garbage():
    r = hc.judge_free_space("a2-1", "df: /data/models: Input/output error\n", "/data/models", 700)
    assert r.seen == "unparseable output: df: /data/models: Input/output error"


def test_df_mount_with_space():
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sdb1 100 50 50 50% /mnt/big disk\n"
    assert hc.parse_df(out)["mount"] == "/mnt/big disk"


# ---------------------------------------------------------------------------
# 6. Host NIC
# ---------------------------------------------------------------------------


def test_ip_command():
    assert hc.ip_addr_command() == "ip -o addr show 2>&1 || true"


def test_nic_ipv4_and_ipv6_ok():
    ip = fx("ip_addr.txt")
    r4 = hc.judge_nic_ip("a2-1", ip, "enp189s0f0", "10.0.0.5")
    assert r4.ok
    assert r4.message == "node a2-1: check nic-ip: expected enp189s0f0 to hold 10.0.0.5, saw enp189s0f0 holds 10.0.0.5"
    r6 = hc.judge_nic_ip("a2-1", ip, "enp189s0f0", "fd00:10:0:0::5")  # non-canonical form
    assert r6.ok and r6.seen == "enp189s0f0 holds fd00:10::5"


def test_nic_vlan_with_parent_suffix():
    assert hc.judge_nic_ip("a2-1", fx("ip_addr.txt"), "bond0.100", "10.9.0.5").ok


def test_nic_ip_on_other_nic():
    r = hc.judge_nic_ip("a2-1", fx("ip_addr.txt"), "enp189s0f1", "10.0.0.5")
    assert r.message == "node a2-1: check nic-ip: expected enp189s0f1 to hold 10.0.0.5, saw 10.0.0.5 is on enp189s0f0"


def test_nic_holds_other_ip():
    r = hc.judge_nic_ip("a2-1", fx("ip_addr.txt"), "docker0", "10.0.0.9")
    assert r.seen == "docker0 holds 172.17.0.1/16"


def test_nic_unknown():
    r = hc.judge_nic_ip("a2-1", fx("ip_addr.txt"), "eth9", "10.1.1.1")
    assert r.seen == "no interface named eth9 with an address, and no interface holds 10.1.1.1"


def test_nic_bad_config_and_garbage():
    assert hc.judge_nic_ip("n", fx("ip_addr.txt"), "eth0", "10.0.0.300").seen == (
        "configured IP '10.0.0.300' is not an IP address"
    )
    assert hc.judge_nic_ip("n", "Command 'ip' not found\n", "eth0", "10.0.0.5").seen == (
        "unparseable output: Command 'ip' not found"
    )


def test_discover_nic():
    ip = fx("ip_addr.txt")
    assert hc.discover_nic(ip, "10.0.0.5") == "enp189s0f0"
    assert hc.discover_nic(ip, "fd00:10::5") == "enp189s0f0"
    assert hc.discover_nic(ip, "10.9.0.5") == "bond0.100"


@pytest.mark.parametrize(
    "out,ip,msg",
    [
        ("ip_addr.txt", "10.1.1.1", "no network interface holds 10.1.1.1"),
        (
            "ip_addr.txt",
            "192.168.1.5",
            "192.168.1.5 is held by several interfaces (br-lab, enp189s0f1); set nic explicitly",
        ),
        ("ip_addr.txt", "nope", "not an IP address: 'nope'"),
        (None, "10.0.0.5", "cannot find the NIC holding 10.0.0.5: empty output"),
    ],
)
def test_discover_nic_errors(out, ip, msg):
    text = fx(out) if out else ""
    with pytest.raises(hc.NicDiscoveryError) as ei:
        hc.discover_nic(text, ip)
    assert str(ei.value) == msg
    assert isinstance(ei.value, ValueError)


# ---------------------------------------------------------------------------
# 7. hccn_tool per NPU + TLS across nodes
# ---------------------------------------------------------------------------


def test_hccn_command_shape():
    cmd = hc.hccn_command(8)
    assert cmd.startswith("H=$(command -v hccn_tool || echo /usr/local/Ascend/driver/tools/hccn_tool); ")
    assert 'while [ "$i" -lt 8 ]' in cmd
    for q in ("-link -g", "-net_health -g", "-ip -g", "-tls -g"):
        assert f'"$H" -i "$i" {q} 2>&1' in cmd
    assert hc.hccn_command(16, hccn_tool="/opt/x y/hccn_tool").startswith("H='/opt/x y/hccn_tool'; ")
    with pytest.raises(ValueError):
        hc.hccn_command(0)


def test_parse_hccn_values():
    p = hc.parse_hccn(fx("hccn_a2_healthy.txt"))
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
    r = hc.judge_npu_network("a2-1", fx("hccn_a2_healthy.txt"), 8)
    assert r.ok
    assert r.message == (
        "node a2-1: check npu-network: expected 8 NPUs with link UP, net health Success and an IP, "
        "saw 8 NPUs up, healthy, with IPs"
    )
    assert r.detail["npus"][7]["ip"] == "10.20.0.18"


def test_npu_network_link_down():
    r = hc.judge_npu_network("a2-1", fx("hccn_a2_link_down.txt"), 8)
    assert r.message == (
        "node a2-1: check npu-network: expected 8 NPUs with link UP, net health Success and an IP, saw NPU 2 link DOWN"
    )


def test_npu_network_fault_and_no_ip():
    r = hc.judge_npu_network("a2-1", fx("hccn_a2_net_fault.txt"), 8)
    assert r.seen == "NPU 4 net health Fault; NPU 6 no IP (Get ipconf failed, because no ip was preset there!)"


def test_npu_network_missing_npus():
    r = hc.judge_npu_network("a3-1", fx("hccn_a2_healthy.txt"), 10)
    assert r.seen == "NPU 8 not reported; NPU 9 not reported"


def test_npu_network_tool_missing_and_garbage():
    r = hc.judge_npu_network("a2-1", fx("hccn_tool_missing.txt"), 8)
    assert r.seen == (
        "unparseable output: sh: 1: /usr/local/Ascend/driver/tools/hccn_tool: not found sh: 1: /usr/local/Asc"
    )
    r = hc.judge_npu_network("a2-1", fx("hccn_garbage.txt"), 8)
    assert r.seen == "unparseable output: <html><body>502 Bad Gateway</body></html>"


def test_npu_network_partial_garbage_in_one_section():
    text = fx("hccn_a2_healthy.txt").replace("link status: UP", "hccn_tool is busy, please try again", 1)
    r = hc.judge_npu_network("a2-1", text, 8)
    assert r.seen == "NPU 0 link unknown (hccn_tool is busy, please try again)"


def test_tls_consistent():
    res = hc.judge_tls_consistency({"a2-1": fx("hccn_a2_healthy.txt"), "a2-2": fx("hccn_a2_peer_healthy.txt")})
    assert all(r.ok for r in res)
    assert messages(res) == [
        "node a2-1: check npu-tls: expected tls switch 0 on all NPUs (reference node), saw tls switch 0 on NPU 0-7",
        "node a2-2: check npu-tls: expected tls switch 0 as on node a2-1, saw tls switch 0 on NPU 0-7",
    ]


def test_tls_mismatch_names_both_nodes_and_values():
    res = hc.judge_tls_consistency(
        {"a2-1": fx("hccn_a2_healthy.txt"), "a2-2": fx("hccn_a2_tls_on.txt"), "a2-3": fx("hccn_a2_tls_mixed.txt")}
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
    res = hc.judge_tls_consistency({"a2-3": fx("hccn_a2_tls_mixed.txt"), "a2-2": fx("hccn_a2_tls_on.txt")})
    assert res[0].message == (
        "node a2-3: check npu-tls: expected tls switch 1 as on node a2-2, "
        "saw NPU 0-5 switch 0, NPU 6-7 switch 1 (node a2-2 has switch 1)"
    )
    assert res[1].ok


def test_tls_unparseable_node():
    res = hc.judge_tls_consistency({"a2-1": fx("hccn_tool_missing.txt"), "a2-2": fx("hccn_a2_tls_on.txt")})
    assert res[0].message == (
        "node a2-1: check npu-tls: expected tls switch 1 as on node a2-2, saw unparseable output: "
        "sh: 1: /usr/local/Ascend/driver/tools/hccn_tool: not found sh: 1: /usr/local/Asc"
    )


def test_tls_alternative_spellings():
    # Inferred variants: tolerated, not documented by Huawei.
    assert hc.parse_hccn("=== npu 0 tls\ntls switch: 1\n")[0].tls_switch == "1"
    assert hc.parse_hccn("=== npu 0 tls\ntls_enable=0\n")[0].tls_switch == "0"
    assert hc.parse_hccn("=== npu 0 tls\ndev_id:0, tls switch[ 1 ](0:disable, 1:enable)\n")[0].tls_switch == "1"


# ---------------------------------------------------------------------------
# 8. Ping
# ---------------------------------------------------------------------------

PEERS = {"a2-2": {0: "10.20.1.11", 1: "10.20.1.12"}}


def test_ping_targets():
    t = hc.ping_targets(2, PEERS)
    assert [(x.local_npu, x.peer_node, x.peer_npu, x.peer_ip) for x in t] == [
        (0, "a2-2", 0, "10.20.1.11"),
        (0, "a2-2", 1, "10.20.1.12"),
        (1, "a2-2", 0, "10.20.1.11"),
        (1, "a2-2", 1, "10.20.1.12"),
    ]
    same = hc.ping_targets([0, 1], PEERS, same_index_only=True)
    assert [(x.local_npu, x.peer_npu) for x in same] == [(0, 0), (1, 1)]


def test_ping_command():
    cmd = hc.ping_command(
        [hc.PingTarget(0, "a2-2", 3, "10.20.1.14"), hc.PingTarget(1, "a2-2", 3, "fd00::14")], hccn_tool="hccn_tool"
    )
    assert cmd == (
        "H=hccn_tool; echo '=== ping 0 a2-2 3 10.20.1.14'; \"$H\" -i 0 -ping -g address 10.20.1.14 2>&1; "
        "echo '=== ping 1 a2-2 3 fd00::14'; \"$H\" -i 1 -ping -inet6 -g ipv6_address fd00::14 2>&1; "
        'echo "=== end"; true'
    )


@pytest.mark.parametrize(
    "target",
    [hc.PingTarget(0, "a2 2", 0, "10.0.0.1"), hc.PingTarget(0, "a2-2", 0, "10.0.0.1; reboot")],
)
def test_ping_command_rejects_unsafe_values(target):
    with pytest.raises(ValueError):
        hc.ping_command([target])


def test_ping_all_ok():
    r = hc.judge_ping("a2-1", fx("ping_ok.txt"), hc.ping_targets(2, PEERS))
    assert r.ok
    assert r.message == "node a2-1: check npu-ping: expected all 4 NPU pairs reachable, saw 4/4 reachable"


def test_ping_loss_names_node_npu_peer_and_ip():
    r = hc.judge_ping("a2-1", fx("ping_loss.txt"), hc.ping_targets(2, PEERS))
    assert not r.ok
    assert r.message == (
        "node a2-1: check npu-ping: expected all 4 NPU pairs reachable, saw 2/4 reachable "
        "(NPU 1 -> a2-2 NPU 0 10.20.1.11: 3 packets transmitted, 2 received, 33.33% packet loss; "
        "NPU 1 -> a2-2 NPU 1 10.20.1.12: 3 packets transmitted, 0 received, 100.00% packet loss)"
    )


def test_ping_missing_result():
    r = hc.judge_ping("a2-1", fx("ping_ok.txt"), hc.ping_targets(3, PEERS))
    assert r.seen == (
        "4/6 reachable (NPU 2 -> a2-2 NPU 0 10.20.1.11: no result; NPU 2 -> a2-2 NPU 1 10.20.1.12: no result)"
    )


def test_ping_without_targets_judges_what_ran():
    assert hc.judge_ping("a2-1", fx("ping_loss.txt")).seen.startswith("2/4 reachable (NPU 1 -> a2-2 NPU 0")


def test_ping_hccs_style_and_errors():
    out = (
        "=== ping 0 a3-2 0 10.30.0.1\ndevice 0 PING 10.30.0.1\nThis pkt ping success!\nThis pkt ping success!\n"
        "=== ping 0 a3-2 1 10.30.0.2\ndevice 0 PING 10.30.0.2\nThis pkt send fail!\nThis pkt ping success!\n"
        "=== ping 1 a3-2 0 10.30.0.1\nhccn_tool is busy, please try again\n=== end\n"
    )
    r = hc.judge_ping("a3-1", out)
    assert r.seen == (
        "1/3 reachable (NPU 0 -> a3-2 NPU 1 10.30.0.2: 1 of 2 packets answered; "
        "NPU 1 -> a3-2 NPU 0 10.30.0.1: unparseable output: hccn_tool is busy, please try again)"
    )


def test_ping_garbage_and_empty_targets():
    r = hc.judge_ping("a2-1", fx("hccn_garbage.txt"), hc.ping_targets(2, PEERS))
    assert r.message == (
        "node a2-1: check npu-ping: expected all 4 NPU pairs reachable, "
        "saw unparseable output: <html><body>502 Bad Gateway</body></html>"
    )
    assert hc.judge_ping("a2-1", "H=x\n=== end\n", []).ok


# ---------------------------------------------------------------------------
# The command strings really run under POSIX sh (stub tools, no Ascend host)
# ---------------------------------------------------------------------------


def _stub(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def _sh(cmd: str, env_path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, env=env, timeout=30)


HCCN_STUB = r"""
i="$2"
case "$3" in
  -link) if [ "$i" = 1 ]; then echo "link status: DOWN"; else echo "link status: UP"; fi ;;
  -net_health) echo "net health status: Success" ;;
  -ip) printf 'ipaddr:10.20.0.%s\nnetmask:255.255.255.0\n' "$((11 + i))" ;;
  -tls) echo "dev_id:$i, tls switch[0](0:disable, 1:enable), tls alarm time threshold[60]days" ;;
  -ping)
    shift 5
    [ "$1" = address ] || [ "$1" = ipv6_address ]
    echo "device $i PING $2"; echo "recv seq=0,time=0.05ms"
    echo "1 packets transmitted, 1 received, 0.00% packet loss" ;;
esac
"""


def test_hccn_command_runs_under_sh(tmp_path):
    tool = _stub(tmp_path / "hccn tool", HCCN_STUB)
    res = _sh(hc.hccn_command(2, hccn_tool=tool))
    assert res.returncode == 0, res.stderr
    r = hc.judge_npu_network("n", res.stdout, 2)
    assert r.seen == "NPU 1 link DOWN"
    assert hc.parse_hccn(res.stdout)[1].ipaddr == "10.20.0.12"


def test_hccn_command_finds_tool_on_path(tmp_path):
    _stub(tmp_path / "hccn_tool", HCCN_STUB)
    res = _sh(hc.hccn_command(1), env_path=f"{tmp_path}:/usr/bin:/bin")
    assert hc.judge_npu_network("n", res.stdout, 1).ok


def test_hccn_command_without_tool_exits_zero(tmp_path):
    res = _sh(hc.hccn_command(2), env_path=str(tmp_path))
    assert res.returncode == 0
    r = hc.judge_npu_network("n", res.stdout, 2)
    assert not r.ok and r.seen.startswith("unparseable output: ")


def test_ping_command_runs_under_sh(tmp_path):
    tool = _stub(tmp_path / "hccn_tool", HCCN_STUB)
    targets = hc.ping_targets(2, {"a2-2": {0: "10.20.1.11"}, "a2-3": {0: "fd00::21"}})
    res = _sh(hc.ping_command(targets, hccn_tool=tool))
    assert res.returncode == 0, res.stderr
    r = hc.judge_ping("a2-1", res.stdout, targets)
    assert r.ok, r.message
    assert r.seen == "4/4 reachable"


def test_driver_and_df_commands_run_under_sh(tmp_path):
    present = tmp_path / "with space"
    present.mkdir()
    vinfo = tmp_path / "version.info"
    vinfo.write_text("Version=24.1.rc2\nascendhal_version=7.35.23\n")
    paths = [str(present), str(tmp_path / "absent")]
    res = _sh(hc.driver_files_command(paths, version_file=str(vinfo)))
    assert res.returncode == 0
    r = hc.judge_driver_files("n", res.stdout, paths, version_file=str(vinfo))
    assert r.seen == f"missing {tmp_path / 'absent'}"

    res = _sh(hc.df_command(str(present)))
    assert res.returncode == 0
    assert hc.judge_free_space("n", res.stdout, str(present), 0).ok
    res = _sh(hc.df_command(str(tmp_path / "absent")))
    assert res.returncode == 0
    assert hc.judge_free_space("n", res.stdout, str(tmp_path / "absent"), 0).seen == (
        f"directory {tmp_path / 'absent'} does not exist"
    )


def test_missing_tools_exit_zero(tmp_path):
    for cmd in (hc.npu_smi_command(), hc.docker_version_command(), hc.ip_addr_command()):
        res = _sh(cmd, env_path=str(tmp_path))
        assert res.returncode == 0
        assert res.stdout.strip()  # the error text lands in stdout for the judge
    assert not hc.judge_docker("n", _sh(hc.docker_version_command(), env_path=str(tmp_path)).stdout).ok
