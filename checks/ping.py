"""`hccn_tool -ping`: every NPU reaches its peers on the other nodes (`npu-ping`)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .common import CheckResult, as_text, quote, token, unparseable
from .hccn import hccn_prelude

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "npu-ping"

# Documented output of `hccn_tool -i 0 -ping -g address 10.10.100.10`:
#   device 0 PING 10.10.100.10
#   recv seq=0,time=0.067000ms
#   recv time out seq=0            (lost packet)
#   3 packets transmitted, 3 received, 0.00% packet loss
# The HCCS variant (-hccs_ping) prints "This pkt ping success!" per packet.


@dataclass(frozen=True)
class PingTarget:
    local_npu: int
    peer_node: str
    peer_npu: int
    peer_ip: str


@dataclass(frozen=True)
class PingOutcome:
    target: PingTarget
    ok: bool
    summary: str  # e.g. "3 packets transmitted, 3 received, 0.00% packet loss"


def ping_targets(
    local_npus: int | Iterable[int],
    peers: Mapping[str, Mapping[int, str]],
    same_index_only: bool = False,
) -> list[PingTarget]:
    """All (local NPU, peer NPU) pairs towards every peer node.

    ``peers``: peer node -> {peer NPU index: NPU IP} (from that node's
    :func:`parse_hccn`).  ``same_index_only`` restricts to NPU i -> peer NPU i
    (one rail per NPU index, the usual RoCE plane layout; 8x fewer pings).
    """
    locals_ = range(local_npus) if isinstance(local_npus, int) else list(local_npus)
    out = []
    for i in locals_:
        for peer_node, ips in peers.items():
            for j, ip in sorted(ips.items()):
                if same_index_only and i != j:
                    continue
                out.append(PingTarget(int(i), str(peer_node), int(j), str(ip)))
    return out


def ping_command(targets: Sequence[PingTarget], hccn_tool: str | None = None) -> str:
    """Sequential pings, each preceded by
    ``=== ping <local_npu> <peer_node> <peer_npu> <peer_ip>``.  IPv6 peers
    use ``-ping -inet6 -g ipv6_address <ip>``."""
    parts = [hccn_prelude(hccn_tool).rstrip("; ")]
    for t in targets:
        node = token(t.peer_node, "peer node name")
        ip = str(ipaddress.ip_address(str(t.peer_ip).strip()))
        header = f"=== ping {int(t.local_npu)} {node} {int(t.peer_npu)} {ip}"
        if ":" in ip:
            query = f"-ping -inet6 -g ipv6_address {quote(ip)}"
        else:
            query = f"-ping -g address {quote(ip)}"
        parts.append(f'echo {quote(header)}; "$H" -i {int(t.local_npu)} {query} 2>&1')
    parts.append('echo "=== end"; true')
    return "; ".join(parts)


_PING_HDR = re.compile(r"^=== ping (\d+) (\S+) (\d+) (\S+)\s*$")
_PING_SUMMARY = re.compile(r"(\d+)\s+packets? transmitted,\s*(\d+)\s+received,\s*([\d.]+)%\s*packet loss", re.I)


def _judge_one_ping(text: str) -> tuple[bool, str]:
    m = _PING_SUMMARY.search(text)
    if m:
        sent, recv = int(m.group(1)), int(m.group(2))
        summary = " ".join(m.group(0).split())
        return sent > 0 and recv == sent, summary
    good = len(re.findall(r"ping success", text, re.I))
    bad = len(re.findall(r"recv time out|send fail|check recv msg fail|not start to send|unreachable", text, re.I))
    if good or bad:
        total = good + bad
        return bad == 0 and good > 0, f"{good} of {total} packets answered"
    return False, unparseable(text)


def parse_ping(output: str) -> list[PingOutcome] | None:
    sections: list[tuple[PingTarget, list[str]]] = []
    current: list[str] | None = None
    for line in as_text(output).splitlines():
        s = line.strip()
        if s == "=== end":
            current = None
            continue
        m = _PING_HDR.match(s)
        if m:
            t = PingTarget(int(m.group(1)), m.group(2), int(m.group(3)), m.group(4))
            current = []
            sections.append((t, current))
            continue
        if current is not None:
            current.append(line)
    if not sections:
        return None
    outcomes = []
    for t, lines in sections:
        ok, summary = _judge_one_ping("\n".join(lines))
        outcomes.append(PingOutcome(t, ok, summary))
    return outcomes


def judge_ping(node: str, output: str, targets: Sequence[PingTarget] | None = None) -> CheckResult:
    """``npu-ping``: every (local NPU -> peer NPU IP) pair must answer.

    When ``targets`` is given, pairs absent from the output fail as
    "no result" (e.g. the command was cut short).
    """
    parsed = parse_ping(output)
    n_expected = len(targets) if targets is not None else None
    expected = f"all {n_expected} NPU pairs reachable" if n_expected is not None else "all NPU pairs reachable"
    if parsed is None:
        if targets is not None and not targets:
            return CheckResult(node, CHECK, True, expected, "nothing to ping")
        return CheckResult(node, CHECK, False, expected, unparseable(output))
    by_key = {(o.target.local_npu, o.target.peer_node, o.target.peer_npu, _canon(o.target.peer_ip)): o for o in parsed}
    failures: list[str] = []
    considered: list[PingOutcome] = []
    if targets is None:
        considered = parsed
    else:
        for t in targets:
            o = by_key.get((t.local_npu, t.peer_node, t.peer_npu, _canon(t.peer_ip)))
            if o is None:
                failures.append(f"NPU {t.local_npu} -> {t.peer_node} NPU {t.peer_npu} {t.peer_ip}: no result")
            else:
                considered.append(o)
    for o in considered:
        if not o.ok:
            t = o.target
            failures.append(f"NPU {t.local_npu} -> {t.peer_node} NPU {t.peer_npu} {t.peer_ip}: {o.summary}")
    total = n_expected if n_expected is not None else len(parsed)
    reachable = sum(1 for o in considered if o.ok)
    detail = {
        "pairs": [
            {
                "local_npu": o.target.local_npu,
                "peer_node": o.target.peer_node,
                "peer_npu": o.target.peer_npu,
                "peer_ip": o.target.peer_ip,
                "ok": o.ok,
                "summary": o.summary,
            }
            for o in parsed
        ]
    }
    seen = f"{reachable}/{total} reachable"
    if failures:
        seen += f" ({'; '.join(failures)})"
    return CheckResult(node, CHECK, not failures and total > 0, expected, seen, detail)


def _canon(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip
