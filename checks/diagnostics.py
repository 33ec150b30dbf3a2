"""The diagnostics bundle: what `python -m ops.diagnose <stack>` collects on every node,
and the one-screen summary it prints from that.

One POSIX `sh` script per node prints sections, each after a `##### <name>` line: the vllm
container's state and restart count, its supervisor's metrics, the container's last log lines,
`npu-smi info`, `hccn_tool` link/net_health/ip for every NPU, and the driver's version.info.
Every command's errors are printed, never fatal: a bundle from a broken node is the point.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from core.plan import NodePlan, under_root
from supervision.protocol import GENERATION, GROUP_RESTARTS, HEAD_HEALTHY, RESTART_CAPPED, VLLM_UP

from .common import quote
from .driver_files import driver_files_command, parse_driver_files
from .hccn import DEFAULT_HCCN_TOOL, hccn_command, judge_npu_network
from .npu_smi import judge_npu_smi, npu_smi_command

SECTIONS = ("container", "supervisor", "logs", "npu-smi", "hccn", "driver")
_MARK = "##### "
# Where npu-smi and hccn_tool live; non-login SSH shells often lack them on PATH.
_TOOL_DIRS = ("/usr/local/bin", "/usr/local/Ascend/driver/tools")
_INSPECT = "{{.State.Status}} restarts={{.RestartCount}} exit={{.State.ExitCode}} started={{.State.StartedAt}}"


def collect_command(node: NodePlan, log_lines: int = 200) -> str:
    name = shlex.quote(node.container_name)
    path = ":".join(under_root(node.host_root, d) for d in _TOOL_DIRS)
    metrics = shlex.quote(f"{node.supervisor_url}/metrics") if node.supervisor_url else None
    fetch = (
        f"(curl -fsS --max-time 5 {metrics} || wget -qO- -T 5 {metrics}) 2>&1"
        if metrics
        else "echo 'supervision is off (supervision.enabled)'"
    )
    commands = {
        "container": f"docker inspect -f {shlex.quote(_INSPECT)} {name} 2>&1",
        "supervisor": fetch,
        "logs": f"docker logs --tail {int(log_lines)} {name} 2>&1",
        "npu-smi": npu_smi_command(),
        "hccn": hccn_command(node.npus, under_root(node.host_root, DEFAULT_HCCN_TOOL)),
        "driver": driver_files_command((), node.driver_version_file),
    }
    # Quoted as one word: hostRoot is data, never shell (`"$PATH"` is the only expansion here).
    lines = [f'PATH={quote(path)}:"$PATH"; export PATH']
    for section in SECTIONS:
        lines += [f"echo {shlex.quote(_MARK + section)}", f"{{ {commands[section]}; }} || true"]
    return "\n".join(lines) + "\n"


def split_sections(output: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(_MARK) and line[len(_MARK) :] in SECTIONS:
            current = line[len(_MARK) :]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


@dataclass(frozen=True)
class NodeReport:
    node: NodePlan
    sections: dict[str, str]
    # Set when the node could not be reached at all (SSH failed).
    error: str | None = None


def _metric(text: str, name: str) -> str | None:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return match.group(1) if match else None


def _supervisor_line(text: str) -> str:
    restarts = _metric(text, GROUP_RESTARTS)
    if restarts is None:
        return "supervisor: " + (text.strip().splitlines() or ["no answer"])[-1]
    up = _metric(text, VLLM_UP) == "1"
    healthy = _metric(text, HEAD_HEALTHY) == "1"
    capped = _metric(text, RESTART_CAPPED) == "1"
    return (
        f"supervisor: {restarts} group restart(s), generation {_metric(text, GENERATION)}, "
        f"vllm {'up' if up else 'DOWN'}, head {'healthy' if healthy else 'UNHEALTHY'}"
        + (", GAVE UP (maxRestarts reached)" if capped else "")
    )


def _hardware_line(report: NodeReport) -> str:
    node, s = report.node, report.sections
    smi = [r for r in judge_npu_smi(node.name, s.get("npu-smi", ""), node.npus) if not r.ok]
    net = judge_npu_network(node.name, s.get("hccn", ""), node.npus)
    parsed = parse_driver_files(s.get("driver", ""))
    driver = parsed.version if parsed and parsed.version else "unknown"
    return (
        f"npu-smi: {'all ' + str(node.npus) + ' OK' if not smi else smi[0].seen}; "
        f"hccn: {'links UP, health Success' if net.ok else net.seen}; driver {driver}"
    )


def summary(reports: list[NodeReport], archive: str, tail: int = 3) -> str:
    """At most a screen: two or three lines per node, then where the whole bundle is."""
    lines = []
    for report in reports:
        node = report.node
        ranks = f"{node.ranks.start}-{node.ranks.stop - 1}"
        lines.append(f"{node.name} ({node.role}, ranks {ranks}, {node.ip}):")
        if report.error:
            lines.append(f"  UNREACHABLE: {report.error}")
            continue
        container = report.sections.get("container", "").strip() or "no answer"
        lines.append(f"  container {node.container_name}: {container}")
        lines.append("  " + _supervisor_line(report.sections.get("supervisor", "")))
        lines.append("  " + _hardware_line(report))
        last = [line for line in report.sections.get("logs", "").splitlines() if line.strip()][-tail:]
        lines += [f"  | {line[:150]}" for line in last]
    lines.append(f"everything (full logs, npu-smi, hccn_tool per NPU, version.info): {archive}")
    return "\n".join(lines)
