"""Diagnostics bundle: every node's state in one archive, and a one-screen summary.

    python -m ops.diagnose <stack> [--out DIR] [--lines N]

Reads Pulumi.<stack>.yaml (no Pulumi CLI needed) and runs checks/diagnostics.py's collection on
every node at once: over your own `ssh` and keys to `<ssh.user>@<ip>`, with the options the
Docker provider and the check steps use (batch mode, strict host key checking, pinned to the
node's hostKey, whose file it writes from the stack as `pulumi up` does), or locally for nodes on
this machine's Docker (the local stack).
Writes `diagnostics-<stack>-<UTC time>.tar.gz` (one file per node and section, plus the
summary), readable by you only (mode 0600), and prints the summary. Send the archive with a
report: HCCL's first error is often on the node that did not report it.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from checks.__main__ import ssh_argv
from checks.diagnostics import NodeReport, collect_command, split_sections, summary
from components.host import write_known_hosts
from core.plan import NodePlan
from core.stack import StackFileError, plan_from_stack_file

PROJECT_DIR = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120


def collect(node: NodePlan, log_lines: int) -> NodeReport:
    script = collect_command(node, log_lines)
    with tempfile.TemporaryDirectory(prefix="deepseek-r1-ascend-") as workdir:
        if node.ssh_connection is None:
            argv = ["sh", "-s"]
        else:
            # The check steps' ssh: the Docker provider's options, pinned to the node's hostKey.
            argv = ssh_argv(node.ssh_connection, Path(workdir), None)
            argv += ["--", node.ip, "sh -s"]
        try:
            result = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            return NodeReport(node, {}, f"{argv[0]}: {e}")
    sections = split_sections(result.stdout)
    if not sections:
        return NodeReport(node, {}, (result.stderr.strip() or f"exit status {result.returncode}").splitlines()[-1])
    return NodeReport(node, sections)


def write_archive(path: Path, reports: list[NodeReport], text: str) -> None:
    """The archive, readable by this user only (it holds log lines, addresses and supervisor
    state): created with mode 0600 whatever the umask, never written through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)

    def add(tar: tarfile.TarFile, name: str, content: str) -> None:
        data = content.encode()
        info = tarfile.TarInfo(f"{path.name.removesuffix('.tar.gz')}/{name}")
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))

    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        add(tar, "summary.txt", text + "\n")
        for report in reports:
            if report.error:
                add(tar, f"{report.node.name}/unreachable.txt", report.error + "\n")
            for section, content in report.sections.items():
                add(tar, f"{report.node.name}/{section}.txt", content + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.diagnose", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory for the archive (default: here)")
    parser.add_argument("--lines", type=int, default=200, help="log lines per node in the archive (default 200)")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR, help="where Pulumi.<stack>.yaml lives")
    args = parser.parse_args(argv)
    try:
        groups = plan_from_stack_file(args.project_dir, args.stack).groups
    except StackFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # The pins `pulumi up` writes, from the same stack: never a stale or missing file.
    write_known_hosts(*groups)
    nodes = [n for plan in groups for n in plan.nodes]
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        reports = list(pool.map(lambda n: collect(n, args.lines), nodes))
    archive = args.out / f"diagnostics-{args.stack}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz"
    text = summary(reports, str(archive))
    args.out.mkdir(parents=True, exist_ok=True)
    write_archive(archive, reports, text)
    print(text)
    return 1 if any(r.error for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
