"""The diagnostics bundle: the per-node collection script, run against a fake host, and the
one-screen summary an operator reads first."""

from __future__ import annotations

import subprocess
from dataclasses import replace

from hoststubs import HCCN_STUB, fixture, run_sh, stub

from checks import diagnostics
from checks.diagnostics import NodeReport, collect_command, split_sections, summary
from core.config import load_config
from core.plan import plan_cluster
from supervision.protocol import State, metrics_text


def local_plan(root, supervision=True):
    nodes = [
        {"name": f"n{i}", "ip": f"127.0.0.{i + 1}", "nic": "lo", "hostRoot": f"{root}/n{i}"}
        | {"dockerHost": "unix:///var/run/docker.sock", "containerName": f"vllm-n{i}"}
        for i in range(2)
    ]
    raw = {
        "profile": "atlas-800-a2",
        "nodes": nodes,
        "supervision": {"enabled": supervision},
        "preflight": {"enabled": False},
    }
    return plan_cluster(load_config(raw), "t")


def fake_host(root, tmp_path):
    for tool, body in (
        ("usr/local/bin/npu-smi", f"cat {tmp_path}/npu-smi.txt"),
        ("usr/local/Ascend/driver/tools/hccn_tool", HCCN_STUB),
    ):
        (root / tool).parent.mkdir(parents=True, exist_ok=True)
        stub(root / tool, body)
    (tmp_path / "npu-smi.txt").write_text(fixture("npu_smi/a2_healthy.txt"))
    (root / "usr/local/Ascend/driver/version.info").write_text("Version=24.1.rc2\npackage_version=24.1.rc2\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub(
        bin_dir / "docker",
        'case "$1" in inspect) echo "running restarts=2 exit=0 started=2026-11-28T10:00:00Z" ;;'
        ' logs) printf "vllm-sim: line %s\\n" 1 2 3 4 5 ;; esac',
    )
    return bin_dir


def test_the_collection_reads_every_tool_of_a_node(tmp_path):
    plan = local_plan(tmp_path, supervision=False)
    node = plan.nodes[1]
    bin_dir = fake_host(tmp_path / "n1", tmp_path)
    result = run_sh(collect_command(node, log_lines=3), env_path=f"{bin_dir}:/usr/bin:/bin")
    sections = split_sections(result.stdout)
    assert list(sections) == list(diagnostics.SECTIONS)
    assert sections["container"] == "running restarts=2 exit=0 started=2026-11-28T10:00:00Z"
    assert sections["supervisor"] == "supervision is off (supervision.enabled)"
    assert sections["hccn"].count("link status:") == 8

    text = summary([NodeReport(node, sections)], "diag.tar.gz")
    assert text.splitlines() == [
        "n1 (headless, ranks 2-3, 127.0.0.2):",
        "  container vllm-n1: running restarts=2 exit=0 started=2026-11-28T10:00:00Z",
        "  supervisor: supervision is off (supervision.enabled)",
        "  npu-smi: all 8 OK; hccn: NPU 1 link DOWN; driver 24.1.rc2",
        "  | vllm-sim: line 3",
        "  | vllm-sim: line 4",
        "  | vllm-sim: line 5",
        "everything (full logs, npu-smi, hccn_tool per NPU, version.info): diag.tar.gz",
    ]


def test_the_summary_shows_the_supervisors_view_and_unreachable_nodes(tmp_path):
    plan = local_plan(tmp_path)
    head, worker = plan.nodes
    state = State(gen=4, restarts=3, consecutive=6, capped=True)
    sections = {
        "container": "running restarts=0 exit=0 started=x",
        "supervisor": metrics_text(state, vllm_up=False, head_healthy=False),
        "logs": "supervisor[n0]: giving up: 5 group restarts in a row",
        "npu-smi": fixture("npu_smi/a2_alarm.txt"),
        "hccn": "",
        "driver": "",
    }
    text = summary(
        [NodeReport(head, sections), NodeReport(worker, {}, "ssh: connect to host 127.0.0.2: timed out")], "a"
    )
    lines = text.splitlines()
    assert (
        lines[2]
        == "  supervisor: 3 group restart(s), generation 4, vllm DOWN, head UNHEALTHY, GAVE UP (maxRestarts reached)"
    )
    assert lines[3].startswith("  npu-smi: 7 (NPU 3 health Alarm); hccn: ")
    assert lines[3].endswith("; driver unknown")
    assert lines[5:7] == [
        "n1 (headless, ranks 2-3, 127.0.0.2):",
        "  UNREACHABLE: ssh: connect to host 127.0.0.2: timed out",
    ]
    assert len(lines) <= 24  # one screen


def test_a_supervisor_that_does_not_answer_says_so(tmp_path):
    node = local_plan(tmp_path).nodes[0]
    sections = {"supervisor": "curl: (7) Failed to connect to 127.0.0.1 port 9401"}
    line = summary([NodeReport(node, sections)], "a").splitlines()[2]
    assert line == "  supervisor: curl: (7) Failed to connect to 127.0.0.1 port 9401"


def test_host_root_is_data_in_the_collection_script(tmp_path):
    # M3: hostRoot sat unescaped inside PATH="..."; a `"` or `$(...)` there ran on every node.
    node = local_plan(tmp_path).nodes[0]
    for root in ("/srv/npu$(touch pwned-1)", '/srv/npu"; touch pwned-2; "', "/srv/npu`touch pwned-3`"):
        script = collect_command(replace(node, host_root=root), log_lines=1)
        result = subprocess.run(
            ["/bin/sh", "-c", script + 'printf "%s\\n" "$PATH"'], capture_output=True, text=True, cwd=tmp_path
        )
        assert not list(tmp_path.glob("pwned*")), script.splitlines()[0]
        assert result.stdout.splitlines()[-1].startswith(f"{root}/usr/local/bin:{root}/usr/local/Ascend/driver/tools:")
