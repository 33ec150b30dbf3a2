"""`python -m ops.diagnose`: reaches SSH nodes the way the Docker provider and the checks do."""

import os
import stat
import sys

import yaml
from mocked import PROJECT_DIR

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


def ssh_calls(bin_dir):
    text = (bin_dir / "ssh.calls").read_text()
    return [call.split("\n") for call in text.strip("\n").split("\n\n")]


def test_ssh_nodes_are_reached_with_the_providers_pinned_batch_options(tmp_path, monkeypatch, capsys):
    document = yaml.safe_load((PROJECT_DIR / "Pulumi.a2.yaml").read_text())
    document["config"]["deepseek-r1-ascend:nodes"][0]["hostKey"] = KEY_0
    (tmp_path / "Pulumi.a2.yaml").write_text(yaml.safe_dump(document))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH)
    (bin_dir / "ssh").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    code = diagnose.main(["a2", "--project-dir", str(tmp_path), "--out", str(tmp_path / "out")])

    assert code == 0, capsys.readouterr()
    calls = sorted(ssh_calls(bin_dir), key=lambda argv: argv[-2])
    assert [argv[-3:] for argv in calls] == [["--", "192.0.2.11", "sh -s"], ["--", "192.0.2.12", "sh -s"]]
    pinned, unpinned = (" ".join(argv) for argv in calls)
    # The Docker provider's options come first (ssh keeps the first value): batch mode and strict
    # host key checking, against the stack's known_hosts for a node with a hostKey.
    batch = "-T -o BatchMode=yes -o StrictHostKeyChecking=yes -o ServerAliveInterval=30 "
    assert pinned.startswith(
        batch + "-o UserKnownHostsFile=~/.ssh/deepseek-r1-ascend-a2.known_hosts -o GlobalKnownHostsFile=/dev/null "
    ), pinned
    assert unpinned.startswith(batch) and "KnownHostsFile" not in unpinned, unpinned
    for argv in calls:
        assert argv[argv.index("-p") + 1] == "22"
        assert argv[argv.index("-l") + 1] == "root"
    assert "a2-1 (headless, ranks 2-3, 192.0.2.12):\n  container vllm-ascend: deepseek-r1-ascend running" in (
        capsys.readouterr().out
    )
