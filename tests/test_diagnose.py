"""`python -m ops.diagnose`: reaches SSH nodes the way the Docker provider and the checks do."""

import os
import stat
import sys
import tarfile

import pytest
import yaml
from mocked import PROJECT_DIR

from checks.diagnostics import NodeReport
from components import host
from core.connection import known_hosts_file
from core.stack import plan_from_stack_file
from ops import diagnose

KEY_0 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfNodeZero"
# A stand-in for the user's `ssh`: records its argv (one argument a line, a blank line after) and
# answers like a node whose collection ran.
FAKE_SSH = f"""#!{sys.executable}
import sys
with open(sys.argv[0] + ".calls", "a") as calls:
    calls.write("\\n".join(sys.argv[1:]) + "\\n\\n")
sys.stdin.read()
print("##### container")
print("deepseek-r1-ascend running")
"""


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    """The a2 stack with node a2-0 pinned, in `tmp_path`, and the stand-in `ssh` first on PATH."""
    document = yaml.safe_load((PROJECT_DIR / "Pulumi.a2.yaml").read_text())
    document["config"]["deepseek-r1-ascend:nodes"][0]["hostKey"] = KEY_0
    (tmp_path / "Pulumi.a2.yaml").write_text(yaml.safe_dump(document))
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "ssh").write_text(FAKE_SSH)
    (tools / "ssh").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    return tools


def ssh_calls(bin_dir):
    text = (bin_dir / "ssh.calls").read_text()
    return [call.split("\n") for call in text.strip("\n").split("\n\n")]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """`~` of ssh, where diagnose writes the stack's pinned keys: never the developer's own."""
    monkeypatch.setattr(host, "ssh_home", lambda: tmp_path / "home")
    return tmp_path / "home"


def test_ssh_nodes_are_reached_with_the_providers_pinned_batch_options(tmp_path, bin_dir, capsys):
    code = diagnose.main(["a2", "--project-dir", str(tmp_path), "--out", str(tmp_path / "out")])

    assert code == 0, capsys.readouterr()
    calls = sorted(ssh_calls(bin_dir), key=lambda argv: argv[-2])
    assert [argv[-3:] for argv in calls] == [["--", "192.0.2.11", "sh -s"], ["--", "192.0.2.12", "sh -s"]]
    pinned, unpinned = (" ".join(argv) for argv in calls)
    # The Docker provider's options come first (ssh keeps the first value): batch mode and strict
    # host key checking, against the stack's known_hosts for a node with a hostKey.
    batch = "-T -o BatchMode=yes -o StrictHostKeyChecking=yes -o ServerAliveInterval=30 "
    assert pinned.startswith(
        batch + f"-o UserKnownHostsFile={known_hosts_file('a2')} -o GlobalKnownHostsFile=/dev/null "
    ), pinned
    assert unpinned.startswith(batch) and "KnownHostsFile" not in unpinned, unpinned
    for argv in calls:
        assert argv[argv.index("-p") + 1] == "22"
        assert argv[argv.index("-l") + 1] == "root"
    assert "a2-1 (headless, ranks 2-3, 192.0.2.12):\n  container vllm-ascend: deepseek-r1-ascend running" in (
        capsys.readouterr().out
    )


def test_diagnose_writes_the_pins_it_reaches_the_nodes_with(tmp_path, home, bin_dir):
    # A fresh machine, or a stack whose hostKey changed since the last `pulumi up`: the file the
    # ssh options name holds the stack's keys now, not a stale or missing set.
    assert diagnose.main(["a2", "--project-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    pins = home / known_hosts_file("a2").removeprefix("~/")
    assert pins.read_text() == f"192.0.2.11 {KEY_0}\n"
    assert pins.stat().st_mode & 0o777 == 0o600


def test_the_archive_is_readable_by_its_owner_only(tmp_path):
    # Log lines, NPU and RoCE addresses, supervisor state: not for every user of the machine.
    node = plan_from_stack_file(PROJECT_DIR, "a2").cluster.nodes[0]
    archive = tmp_path / "diagnostics-a2.tar.gz"
    old = os.umask(0o022)
    try:
        diagnose.write_archive(archive, [NodeReport(node, {"logs": "line"})], "summary")
        # An archive left by an earlier run gets the same mode.
        archive.chmod(0o644)
        diagnose.write_archive(archive, [NodeReport(node, {"logs": "line"})], "summary")
    finally:
        os.umask(old)
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["diagnostics-a2/a2-0/logs.txt", "diagnostics-a2/summary.txt"]


def test_the_archive_is_never_written_through_a_link(tmp_path):
    node = plan_from_stack_file(PROJECT_DIR, "a2").cluster.nodes[0]
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / "diagnostics-a2.tar.gz").symlink_to(victim)
    with pytest.raises(OSError):
        diagnose.write_archive(tmp_path / "diagnostics-a2.tar.gz", [NodeReport(node, {})], "summary")
    assert victim.read_text() == "untouched"
