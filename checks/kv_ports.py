"""A PD node's KV port ranges are free (`kv-ports`): no process listens on a port an engine's
Mooncake connector will bind.

An engine binds `kv_port` to `kv_port + dp x tp - 1`; a port already taken shows only at runtime,
as an intermittent `ZMQError: Address already in use` or "KV Cache sending/receiving thread failed
to start". `ss -Htlnp` lists the listening TCP sockets with their processes (the processes of other
users only when run as root). Where `ss` is missing or too old for `-H`, the kernel's own tables,
/proc/net/tcp and /proc/net/tcp6, list the same sockets without their owners.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .common import CheckResult, as_text, ranges, unparseable

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "kv-ports"
# The stack key that moves every KV port range; named in the way forward.
PORT_KEY = "pd.kvPortBase"

_SS, _PROC, _END = "=== ss", "=== proc", "=== end"
# ss: State Recv-Q Send-Q Local:Port Peer:Port [users:(("name",pid=N,fd=M),...)]
_SS_ROW = re.compile(r"^LISTEN\s+\d+\s+\d+\s+\S+:(\d+)\s+\S+(?:\s+(.*))?$")
_SS_USER = re.compile(r'\("([^"]*)",pid=(\d+)')
# /proc/net/tcp*: "sl: local rem st ..."; the port is big-endian hex, 0A is LISTEN.
_PROC_HEADER = re.compile(r"^\s*sl\s+local_address\s")
_PROC_ROW = re.compile(r"^\s*\d+:\s+[0-9A-Fa-f]+:([0-9A-Fa-f]{4})\s+[0-9A-Fa-f]+:[0-9A-Fa-f]{4}\s+([0-9A-Fa-f]{2})\s")
_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    port: int
    owners: tuple[str, ...]  # "python3 (pid 4121)"; empty when not shown


@dataclass(frozen=True)
class Listeners:
    sockets: tuple[Listener, ...]
    from_ss: bool  # else from /proc, which names no process


def kv_ports_command() -> str:
    """ss's listing after its marker, or, when ss fails (missing, or an old one without -H), the
    kernel's tables after theirs; then an end marker. /proc/net/tcp6 is absent without IPv6, which
    is no error; a missing /proc/net/tcp is printed and judged."""
    return (
        f"if out=$(ss -Htlnp 2>&1); then echo '{_SS}'; printf '%s\\n' \"$out\"; "
        f"else echo '{_PROC}'; cat /proc/net/tcp 2>&1; cat /proc/net/tcp6 2>/dev/null; fi; echo '{_END}'"
    )


def _ss_row(line: str) -> Listener | None:
    m = _SS_ROW.match(line.strip())
    if not m:
        return None
    owners = tuple(f"{name} (pid {pid})" for name, pid in _SS_USER.findall(m.group(2) or ""))
    return Listener(int(m.group(1)), owners)


def _proc_rows(lines: Sequence[str]) -> list[Listener] | None:
    if not any(_PROC_HEADER.match(line) for line in lines):
        return None
    found = []
    for line in lines:
        if not line.strip() or _PROC_HEADER.match(line):
            continue
        m = _PROC_ROW.match(line)
        if not m:
            return None
        if m.group(2).upper() == _LISTEN:
            found.append(Listener(int(m.group(1), 16), ()))
    return found


def parse_kv_ports(output: str) -> Listeners | None:
    """None unless the output runs to its end marker and every line of its section is a socket."""
    lines = as_text(output).splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() in (_SS, _PROC, _END)]
    if len(marks) != 2 or lines[marks[1]].strip() != _END:
        return None
    section, body = lines[marks[0]].strip(), lines[marks[0] + 1 : marks[1]]
    if section == _PROC:
        found = _proc_rows(body)
        return None if found is None else Listeners(tuple(found), from_ss=False)
    rows = [_ss_row(line) for line in body if line.strip()]
    if None in rows:
        return None
    return Listeners(tuple(rows), from_ss=True)


def _owners(listeners: Sequence[Listener]) -> str | None:
    return ", ".join(sorted({o for s in listeners for o in s.owners})) or None


def judge_kv_ports(node: str, output: str, port_ranges: Sequence[Sequence]) -> CheckResult:
    """`port_ranges`: [first, last, engine id] per engine on the node, inclusive. A listener on any
    address takes the port: a wildcard bind fails beside a listener on one address too."""
    spans = [(int(first), int(last), str(engine)) for first, last, engine in port_ranges]
    wanted = ", ".join(f"{first}-{last} (engine {engine})" for first, last, engine in spans)
    expected = f"KV ports {wanted} free"
    parsed = parse_kv_ports(output)
    if parsed is None:
        return CheckResult(node, CHECK, False, expected, unparseable(output))
    # ss names other users' processes only to root; /proc names none.
    unnamed = "a process ss names only to root" if parsed.from_ss else "a process (no ss to name it)"
    taken, stop = [], []
    for first, last, engine in spans:
        inside = [s for s in parsed.sockets if first <= s.port <= last]
        if inside:
            owners = _owners(inside)
            ports = ranges(s.port for s in inside)
            plural = "s" if "," in ports or "-" in ports else ""
            taken.append(
                f"port{plural} {ports} taken by {owners or unnamed}, in engine {engine}'s range {first}-{last}"
            )
            stop.append(owners or f"what listens on {ports} (`ss -tlnp` as root names it)")
    if not taken:
        return CheckResult(node, CHECK, True, expected, f"all free ({len(parsed.sockets)} listeners elsewhere)")
    fix = f"stop {' and '.join(dict.fromkeys(stop))}, or move the KV port ranges with `{PORT_KEY}`"
    return CheckResult(node, CHECK, False, expected, "; ".join(taken), {"fix": fix})
