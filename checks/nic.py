"""`ip -o addr show`: the host NIC holding the node's IP (`nic-ip`), or finding it for `nic: auto`."""

from __future__ import annotations

import ipaddress
import re

from .common import CheckResult, as_text, unparseable

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "nic-ip"


class NicDiscoveryError(ValueError):
    """``discover_nic`` found no interface, or several, holding the IP."""


# `ip -o addr show` prints one line per address, e.g.
#   2: enp189s0f0    inet 10.0.0.5/24 brd 10.0.0.255 scope global enp189s0f0\       valid_lft forever ...
#   2: enp189s0f0    inet6 fe80::1/64 scope link \       valid_lft forever ...
_IP_LINE = re.compile(r"^\s*\d+:\s+(\S+?)(?:@\S+)?\s+(inet6?)\s+([0-9A-Fa-f.:]+)/(\d+)\b")


def ip_addr_command() -> str:
    return "ip -o addr show 2>&1 || true"


def parse_ip_addr(output: str) -> list[tuple[str, str, int]] | None:
    """``[(ifname, address, prefixlen), ...]``; ``None`` if nothing parses."""
    rows = []
    for line in as_text(output).splitlines():
        m = _IP_LINE.match(line)
        if not m:
            continue
        try:
            addr = ipaddress.ip_address(m.group(3))
        except ValueError:
            continue
        rows.append((m.group(1), str(addr), int(m.group(4))))
    return rows or None


def _norm_ip(ip: str) -> str:
    return str(ipaddress.ip_address(str(ip).strip().split("/")[0]))


def discover_nic(output: str, ip: str) -> str:
    """Name of the single interface holding ``ip`` (for ``nic: auto``).

    Raises :class:`NicDiscoveryError` when no interface, or more than one,
    holds it (or when the output is unparseable / ``ip`` is invalid).
    """
    try:
        want = _norm_ip(ip)
    except ValueError as e:
        raise NicDiscoveryError(f"not an IP address: {ip!r}") from e
    rows = parse_ip_addr(output)
    if rows is None:
        raise NicDiscoveryError(f"cannot find the NIC holding {want}: {unparseable(as_text(output))}")
    nics = sorted({nic for nic, addr, _ in rows if addr == want})
    if not nics:
        raise NicDiscoveryError(f"no network interface holds {want}")
    if len(nics) > 1:
        raise NicDiscoveryError(f"{want} is held by several interfaces ({', '.join(nics)}); set nic explicitly")
    return nics[0]


def judge_nic_ip(node: str, output: str, nic: str, ip: str) -> CheckResult:
    try:
        want = _norm_ip(ip)
    except ValueError:
        return CheckResult(node, CHECK, False, f"{nic} to hold {ip}", f"configured IP {ip!r} is not an IP address")
    expected = f"{nic} to hold {want}"
    rows = parse_ip_addr(output)
    if rows is None:
        return CheckResult(node, CHECK, False, expected, unparseable(output))
    on_nic = [f"{a}/{p}" for n, a, p in rows if n == nic]
    holders = sorted({n for n, a, _ in rows if a == want})
    detail = {"addresses": [{"nic": n, "address": a, "prefixlen": p} for n, a, p in rows]}
    if nic in holders:
        return CheckResult(node, CHECK, True, expected, f"{nic} holds {want}", detail)
    if holders:
        seen = f"{want} is on {', '.join(holders)}"
    elif on_nic:
        seen = f"{nic} holds {', '.join(on_nic)}"
    elif any(n == nic for n, _, _ in rows):
        seen = f"{nic} has no address"
    else:
        seen = f"no interface named {nic} with an address, and no interface holds {want}"
    return CheckResult(node, CHECK, False, expected, seen, detail)
