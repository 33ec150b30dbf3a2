"""`hccn_tool`: every NPU's link, health and IP (`npu-network`), and one TLS switch across nodes
(`npu-tls`). One SSH call per host."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core import plan

from .common import CheckResult, as_text, quote, ranges, unparseable

# The checks' names: their resources `<node>-check-<name>`, their messages and the README's table.
NETWORK_CHECK = "npu-network"
TLS_CHECK = "npu-tls"

DEFAULT_HCCN_TOOL = next(p for p in plan.DRIVER_PATHS if p.endswith("/tools/hccn_tool"))
_HCCN_QUERIES = (("link", "-link -g"), ("net_health", "-net_health -g"), ("ip", "-ip -g"), ("tls", "-tls -g"))
_SECTION = re.compile(r"^=== npu (\d+) (link|net_health|ip|tls)\s*$")


def hccn_prelude(hccn_tool: str | None) -> str:
    if hccn_tool:
        return f"H={quote(hccn_tool)}; "
    # Non-login SSH shells often lack the driver tools dir on PATH.
    return f"H=$(command -v hccn_tool || echo {quote(DEFAULT_HCCN_TOOL)}); "


def hccn_command(npu_count: int, hccn_tool: str | None = None) -> str:
    """Loop i=0..npu_count-1 printing ``=== npu <i> <query>`` then the output
    of ``hccn_tool -i <i> -link -g`` / ``-net_health -g`` / ``-ip -g`` /
    ``-tls -g``.  Sequential on purpose: hccn_tool refuses concurrent calls
    ("hccn_tool is busy, please try again")."""
    n = int(npu_count)
    if n < 1:
        raise ValueError("npu_count must be >= 1")
    body = "; ".join(f'echo "=== npu $i {name}"; "$H" -i "$i" {args} 2>&1' for name, args in _HCCN_QUERIES)
    return hccn_prelude(hccn_tool) + f'i=0; while [ "$i" -lt {n} ]; do {body}; i=$((i+1)); done; echo "=== end"; true'


@dataclass(frozen=True)
class NpuNet:
    npu: int
    link: str | None  # "UP" / "DOWN" / None
    net_health: str | None  # "Success" / "Fault" / "Init" / ...
    ipaddr: str | None
    netmask: str | None
    tls_switch: str | None  # "0" / "1" as printed (other words kept verbatim)
    raw: Mapping[str, str]  # section name -> raw text


def _first_line(s: str) -> str:
    for ln in s.splitlines():
        if ln.strip():
            return " ".join(ln.split())[:80]
    return "no output"


def _tls_value(text: str) -> str | None:
    # Documented: "dev_id:0, tls switch[0](0:disable, 1:enable), tls preconfigured[1]..."
    m = re.search(r"tls\s*switch\s*\[\s*([^\]\s]+)\s*\]", text, re.I)
    if m:
        return m.group(1)
    # Tolerated variants (inferred, not seen in Huawei docs): "tls switch: 1",
    # "tls_enable=1" / "tls enable: 1".
    m = re.search(r"tls[ _]?(?:switch|enable)\s*[:=]\s*(\w+)", text, re.I)
    return m.group(1) if m else None


def parse_hccn(output: str) -> dict[int, NpuNet] | None:
    """Per-NPU results of :func:`hccn_command` output; ``None`` for garbage."""
    sections: dict[int, dict[str, list[str]]] = {}
    current: list[str] | None = None
    for line in as_text(output).splitlines():
        if line.strip() == "=== end":
            current = None
            continue
        m = _SECTION.match(line.strip())
        if m:
            current = sections.setdefault(int(m.group(1)), {}).setdefault(m.group(2), [])
            continue
        if current is not None:
            current.append(line)
    if not sections:
        return None
    out: dict[int, NpuNet] = {}
    for npu, secs in sections.items():
        raw = {k: "\n".join(v).strip() for k, v in secs.items()}
        link = re.search(r"link status\s*:\s*(\w+)", raw.get("link", ""), re.I)
        health = re.search(r"net health status\s*:\s*(\w+)", raw.get("net_health", ""), re.I)
        ip = re.search(r"ipaddr\s*:\s*([0-9A-Fa-f.:]+)", raw.get("ip", ""))
        mask = re.search(r"netmask\s*:\s*([0-9A-Fa-f.:]+)", raw.get("ip", ""))
        out[npu] = NpuNet(
            npu=npu,
            link=link.group(1).upper() if link else None,
            net_health=health.group(1) if health else None,
            ipaddr=ip.group(1) if ip else None,
            netmask=mask.group(1) if mask else None,
            tls_switch=_tls_value(raw.get("tls", "")),
            raw=raw,
        )
    return out


def _hccn_unusable(parsed: Mapping[int, NpuNet] | None, output: str) -> str | None:
    """``seen`` text when no NPU gave a single recognisable answer (e.g.
    hccn_tool missing: every section holds "hccn_tool: not found")."""
    if parsed is None:
        return unparseable(output)
    if all(
        n.link is None and n.net_health is None and n.ipaddr is None and n.tls_switch is None for n in parsed.values()
    ):
        bodies = "\n".join(t for n in parsed.values() for t in n.raw.values() if t)
        return unparseable(bodies)
    return None


def judge_npu_network(node: str, output: str, npu_count: int) -> CheckResult:
    """Every NPU 0..npu_count-1: link UP, net health Success, an IP set."""
    expected = f"{npu_count} NPUs with link UP, net health Success and an IP"
    parsed = parse_hccn(output)
    bad = _hccn_unusable(parsed, output)
    if bad is not None or parsed is None:
        return CheckResult(node, NETWORK_CHECK, False, expected, bad or unparseable(output))
    problems: list[str] = []
    for i in range(npu_count):
        n = parsed.get(i)
        if n is None:
            problems.append(f"NPU {i} not reported")
            continue
        if n.link != "UP":
            problems.append(
                f"NPU {i} link {n.link}" if n.link else f"NPU {i} link unknown ({_first_line(n.raw.get('link', ''))})"
            )
        if n.net_health is None:
            problems.append(f"NPU {i} net health unknown ({_first_line(n.raw.get('net_health', ''))})")
        elif n.net_health.lower() != "success":
            problems.append(f"NPU {i} net health {n.net_health}")
        if n.ipaddr is None:
            problems.append(f"NPU {i} no IP ({_first_line(n.raw.get('ip', ''))})")
    detail = {
        "npus": {
            i: {"link": n.link, "net_health": n.net_health, "ip": n.ipaddr, "netmask": n.netmask, "tls": n.tls_switch}
            for i, n in sorted(parsed.items())
        }
    }
    if problems:
        return CheckResult(node, NETWORK_CHECK, False, expected, "; ".join(problems), detail)
    return CheckResult(node, NETWORK_CHECK, True, expected, f"{npu_count} NPUs up, healthy, with IPs", detail)


def _switch_summary(values: Mapping[int, str | None]) -> str:
    groups: dict[str, list[int]] = {}
    for npu, v in values.items():
        groups.setdefault(v if v is not None else "unknown", []).append(npu)
    return ", ".join(f"NPU {ranges(ids)} switch {v}" for v, ids in sorted(groups.items(), key=lambda kv: min(kv[1])))


def judge_tls_consistency(outputs: Mapping[str, str]) -> list[CheckResult]:
    """Cross-node check ``npu-tls``: the hccn TLS switch must be one value on
    every NPU of every node (HCCL cannot link enabled with disabled ends).

    ``outputs`` maps node name -> :func:`hccn_command` stdout, in node order;
    the first node with a uniform, known value is the reference.  One result
    per node.
    """
    per_node: dict[str, dict[int, str | None] | None] = {}
    for node, out in outputs.items():
        parsed = parse_hccn(out)
        unusable = parsed is None or _hccn_unusable(parsed, out) is not None
        per_node[node] = None if unusable else {i: n.tls_switch for i, n in sorted(parsed.items())}
    reference: tuple[str, str] | None = None
    for node, vals in per_node.items():
        if vals and None not in vals.values() and len(set(vals.values())) == 1:
            reference = (node, next(iter(vals.values())))
            break
    results = []
    for node, vals in per_node.items():
        if reference is None:
            expected = "the same tls switch on every NPU of every node"
        elif reference[0] == node:
            expected = f"tls switch {reference[1]} on all NPUs (reference node)"
        else:
            expected = f"tls switch {reference[1]} as on node {reference[0]}"
        if vals is None:
            results.append(
                CheckResult(
                    node, TLS_CHECK, False, expected, _hccn_unusable(parse_hccn(outputs[node]), outputs[node]) or ""
                )
            )
            continue
        uniform = None not in vals.values() and len(set(vals.values())) == 1
        ok = uniform and reference is not None and next(iter(vals.values())) == reference[1]
        detail = {"tls": dict(vals), "reference": reference}
        if ok:
            seen = f"tls switch {reference[1]} on NPU {ranges(vals)}"
        else:
            seen = _switch_summary(vals)
            if reference is not None and reference[0] != node:
                seen += f" (node {reference[0]} has switch {reference[1]})"
        results.append(CheckResult(node, TLS_CHECK, ok, expected, seen, detail))
    return results
