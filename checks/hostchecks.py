"""Pre-deployment host checks for Ascend servers.

Each check is split in two halves:

* a *command builder* returning a POSIX ``sh`` string to run on the host
  (over SSH, via pulumi-command ``remote.Command``).  Every command ends with
  exit status 0 on purpose: a missing tool or a failing sub-command is
  reported in stdout (``2>&1``) and judged here, so the user gets a precise
  message instead of a bare "exit status 127" from the SSH layer;
* a *pure judge* taking the captured stdout (plus the expected values) and
  returning :class:`CheckResult` objects.  Judges never raise on bad input:
  garbage yields ``ok=False`` with ``seen`` starting with
  ``"unparseable output: "``.

Only the standard library is used so the module is trivially testable.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core import plan

__all__ = [
    "CheckResult",
    "HostCheckFailed",
    "NicDiscoveryError",
    "raise_if_failed",
    "unparseable",
    # npu-smi
    "NpuDevice",
    "NpuProcess",
    "NpuSmiInfo",
    "npu_smi_command",
    "parse_npu_smi",
    "judge_npu_smi",
    # /dev
    "MANAGEMENT_DEVICES",
    "dev_list_command",
    "judge_dev_davinci",
    # driver files
    "DEFAULT_VERSION_FILE",
    "DriverFiles",
    "driver_files_command",
    "parse_driver_files",
    "judge_driver_files",
    # docker
    "docker_version_command",
    "judge_docker",
    # disk
    "df_command",
    "parse_df",
    "judge_free_space",
    # host NIC
    "ip_addr_command",
    "parse_ip_addr",
    "discover_nic",
    "judge_nic_ip",
    # hccn
    "DEFAULT_HCCN_TOOL",
    "NpuNet",
    "hccn_command",
    "parse_hccn",
    "judge_npu_network",
    "judge_tls_consistency",
    # other containers holding NPUs
    "npu_holders_command",
    "judge_npu_holders",
    # ping
    "PingTarget",
    "PingOutcome",
    "ping_targets",
    "ping_command",
    "parse_ping",
    "judge_ping",
]


# ---------------------------------------------------------------------------
# Result type and failure aggregation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check on one node.

    ``expected`` and ``seen`` are short human phrases; ``message`` renders
    them as ``node <n>: check <c>: expected <expected>, saw <seen>``.
    ``detail`` carries machine-readable data (not part of the hash).
    """

    node: str
    check: str
    ok: bool
    expected: str
    seen: str
    detail: dict = field(default_factory=dict, hash=False, compare=True)

    @property
    def message(self) -> str:
        return f"node {self.node}: check {self.check}: expected {self.expected}, saw {self.seen}"

    def __str__(self) -> str:  # pragma: no cover - convenience
        return ("ok: " if self.ok else "FAILED: ") + self.message


class HostCheckFailed(Exception):
    """Raised by :func:`raise_if_failed`; ``results`` holds the failed ones."""

    def __init__(self, results: Sequence[CheckResult]):
        self.results = tuple(results)
        n = len(self.results)
        lines = [f"{n} host check{'s' if n != 1 else ''} failed:"]
        lines += [f"  - {r.message}" for r in self.results]
        super().__init__("\n".join(lines))


class NicDiscoveryError(ValueError):
    """``discover_nic`` found no interface, or several, holding the IP."""


def raise_if_failed(results: Iterable[CheckResult]) -> list[CheckResult]:
    """Raise one :class:`HostCheckFailed` listing every failed result.

    Returns the (all passing) results as a list when nothing failed, so it
    can be used inline: ``ok = raise_if_failed(results)``.
    """
    results = list(results)
    failed = [r for r in results if not r.ok]
    if failed:
        raise HostCheckFailed(failed)
    return results


def unparseable(text: str | None) -> str:
    """The ``seen`` phrase for output we cannot make sense of."""
    if text is None or not text.strip():
        return "empty output"
    flat = " ".join(str(text).split())
    return f"unparseable output: {flat[:80]}"


def _text(output: object) -> str:
    """Coerce whatever Pulumi handed us into ``str`` without raising."""
    if output is None:
        return ""
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output if isinstance(output, str) else str(output)


def _q(value: str) -> str:
    value = str(value)
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"refusing to put a line break or NUL into a shell command: {value!r}")
    return shlex.quote(value)


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:@+-]+$")


def _token(value: str, what: str) -> str:
    """Values echoed into section headers must be single safe tokens."""
    value = str(value)
    if not _SAFE_TOKEN.match(value):
        raise ValueError(f"{what} must be a single token of [A-Za-z0-9._:@+-], got {value!r}")
    return value


def _ranges(numbers: Iterable[int]) -> str:
    """``[0,1,2,5]`` -> ``"0-2,5"``."""
    nums = sorted(set(numbers))
    out: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ",".join(out)


# ---------------------------------------------------------------------------
# 1. npu-smi info
# ---------------------------------------------------------------------------
#
# Layout of ``npu-smi info`` (documented table; see tests/fixtures):
#
#   | NPU   Name                | Health        | Power(W)    Temp(C)  Hugepages-Usage(page)|
#   | Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)|
#   +===========================+===============+=======================================+
#   | 0     910B3               | OK            | 97.9        34       0    / 0           |
#   | 0                         | 0000:C1:00.0  | 0           0    / 0 3408 / 65536       |
#
# Atlas 800 A2 (910B): one row pair per NPU id, chip is always 0 -> 8 devices.
# Atlas 800 A3 (910C, "Ascend910"): each NPU id is one card carrying two dies
# (chips 0 and 1); the second header line reads "Chip  Phy-ID" and every chip
# row carries the device's Phy-ID (0..15).  Each chip is a separate logical
# device (/dev/davinci0..15, hccn_tool -i 0..15, ASCEND_RT_VISIBLE_DEVICES),
# so we count *chips* (row pairs), not NPU ids: 8 ids x 2 chips = 16 devices.
#
# The trailing process table lists "No running processes found in NPU N" or
# rows "| npu  chip | pid | name | memory |".


@dataclass(frozen=True)
class NpuDevice:
    npu_id: int
    chip: int
    phy_id: int | None  # present on A3 ("Chip  Phy-ID" layout)
    name: str
    health: str
    hbm_used_mb: int | None
    hbm_total_mb: int | None

    @property
    def device_id(self) -> int:
        """Logical device id: Phy-ID when printed, else the NPU id (A2)."""
        return self.phy_id if self.phy_id is not None else self.npu_id

    @property
    def label(self) -> str:
        if self.phy_id is not None:
            return f"NPU {self.npu_id} chip {self.chip} (device {self.phy_id})"
        if self.chip:
            return f"NPU {self.npu_id} chip {self.chip}"
        return f"NPU {self.npu_id}"


@dataclass(frozen=True)
class NpuProcess:
    npu_id: int
    chip: int
    pid: int
    name: str
    memory_mb: int | None


@dataclass(frozen=True)
class NpuSmiInfo:
    devices: tuple[NpuDevice, ...]
    processes: tuple[NpuProcess, ...]
    idle_npus: tuple[int, ...]  # ids from "No running processes found in NPU N"
    has_process_table: bool


def npu_smi_command() -> str:
    """``npu-smi info``; errors (command not found, dcmi init) go to stdout."""
    return "npu-smi info 2>&1 || true"


_DEV_ROW = re.compile(r"^\s*(\d+)\s+(\S.*?)\s*$")
_CHIP_ROW = re.compile(r"^\s*(\d+)(?:\s+(\d+))?\s*$")
_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")
_PROC_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s*$")
_NO_PROC = re.compile(r"No running processes found in NPU\s+(\d+)", re.I)


def _cells(line: str) -> list[str] | None:
    s = line.strip()
    if not (s.startswith("|") and s.endswith("|")) or len(s) < 2:
        return None
    return [c.strip() for c in s[1:-1].split("|")]


def parse_npu_smi(output: str) -> NpuSmiInfo | None:
    """Parse ``npu-smi info``; ``None`` when no device row is recognisable."""
    text = _text(output)
    devices: list[NpuDevice] = []
    processes: list[NpuProcess] = []
    idle: list[int] = []
    in_procs = False
    pending: tuple[int, str, str] | None = None  # npu id, name, health
    for line in text.splitlines():
        if "Process id" in line or "Process name" in line:
            in_procs = True
            pending = None
            continue
        m = _NO_PROC.search(line)
        if m:
            in_procs = True
            idle.append(int(m.group(1)))
            continue
        cells = _cells(line)
        if cells is None or len(cells) < 2:
            continue
        if in_procs:
            pm = _PROC_ROW.match(cells[0])
            if pm and len(cells) >= 3 and cells[1].isdigit():
                mem = cells[3] if len(cells) >= 4 else ""
                processes.append(
                    NpuProcess(
                        npu_id=int(pm.group(1)),
                        chip=int(pm.group(2)),
                        pid=int(cells[1]),
                        name=cells[2],
                        memory_mb=int(mem) if mem.isdigit() else None,
                    )
                )
            continue
        if pending is not None:
            cm = _CHIP_ROW.match(cells[0])
            if cm:
                npu_id, name, health = pending
                pairs = _PAIR.findall(cells[2]) if len(cells) >= 3 else []
                used, total = (int(pairs[-1][0]), int(pairs[-1][1])) if pairs else (None, None)
                devices.append(
                    NpuDevice(
                        npu_id=npu_id,
                        chip=int(cm.group(1)),
                        phy_id=int(cm.group(2)) if cm.group(2) is not None else None,
                        name=name,
                        health=health,
                        hbm_used_mb=used,
                        hbm_total_mb=total,
                    )
                )
                pending = None
                continue
            pending = None
        dm = _DEV_ROW.match(cells[0])
        if dm and not dm.group(2).isdigit() and not re.match(r"^\d+\s+\d+$", cells[0]):
            health_words = cells[1].split()
            if health_words:
                pending = (int(dm.group(1)), dm.group(2), health_words[0])
    if not devices:
        return None
    return NpuSmiInfo(
        devices=tuple(devices),
        processes=tuple(processes),
        idle_npus=tuple(idle),
        has_process_table=in_procs,
    )


def judge_npu_smi(node: str, output: str, expected_devices: int) -> list[CheckResult]:
    """Two results: ``npu-health`` (count + Health OK) and ``npu-idle``.

    ``expected_devices``: 8 for atlas-800-a2, 16 for atlas-800-a3 (chips are
    counted; see the layout note above).
    """
    info = parse_npu_smi(output)
    if info is None:
        seen = unparseable(output)
        return [
            CheckResult(node, "npu-health", False, f"{expected_devices} healthy NPUs", seen),
            CheckResult(node, "npu-idle", False, "no processes on any NPU", seen),
        ]
    devs = info.devices
    healthy = [d for d in devs if d.health.upper() == "OK"]
    problems = [f"{d.label} health {d.health}" for d in devs if d.health.upper() != "OK"]
    if len(devs) != expected_devices:
        ids = sorted({d.npu_id for d in devs})
        layout = f"{len(devs)} devices listed on {len(ids)} NPU ids"
        problems.insert(0, layout)
    seen = str(len(healthy))
    if problems:
        seen += f" ({'; '.join(problems)})"
    health = CheckResult(
        node,
        "npu-health",
        len(devs) == expected_devices and len(healthy) == len(devs),
        f"{expected_devices} healthy NPUs",
        seen,
        {
            "devices": [
                {
                    "npu_id": d.npu_id,
                    "chip": d.chip,
                    "device_id": d.device_id,
                    "name": d.name,
                    "health": d.health,
                    "hbm_used_mb": d.hbm_used_mb,
                    "hbm_total_mb": d.hbm_total_mb,
                }
                for d in devs
            ]
        },
    )

    labels = {(d.npu_id, d.chip): d.label for d in devs}
    procs = info.processes
    if procs:
        parts = []
        for p in procs:
            where = labels.get((p.npu_id, p.chip), f"NPU {p.npu_id} chip {p.chip}")
            who = f"pid {p.pid}" + (f" {p.name}" if p.name else "")
            mem = f", {p.memory_mb} MB" if p.memory_mb is not None else ""
            parts.append(f"{where}: {who}{mem}")
        n = len(procs)
        idle_seen = f"{n} process{'es' if n != 1 else ''} ({'; '.join(parts)})"
        idle_ok = False
    elif not info.has_process_table:
        idle_seen = "no process table in npu-smi output"
        idle_ok = False
    else:
        idle_seen = "no processes"
        idle_ok = True
    idle = CheckResult(
        node,
        "npu-idle",
        idle_ok,
        "no processes on any NPU",
        idle_seen,
        {
            "processes": [
                {"npu_id": p.npu_id, "chip": p.chip, "pid": p.pid, "name": p.name, "memory_mb": p.memory_mb}
                for p in procs
            ]
        },
    )
    return [health, idle]


# ---------------------------------------------------------------------------
# 2. /dev/davinci*
# ---------------------------------------------------------------------------

MANAGEMENT_DEVICES = tuple(path.removeprefix("/dev/") for path in plan.MANAGEMENT_DEVICES)


def dev_list_command(dev_dir: str = "/dev") -> str:
    """One name per line of the device directory."""
    return f"ls -1 {_q(dev_dir)} 2>&1 || true"


_LS_NAME = re.compile(r"^[A-Za-z0-9_.:+@-]+$")


def judge_dev_davinci(node: str, output: str, expected_devices: int) -> CheckResult:
    text = _text(output)
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    expected = f"{expected_devices} /dev/davinciN devices plus {', '.join(MANAGEMENT_DEVICES)}"
    if not names or not all(_LS_NAME.match(n) for n in names):
        return CheckResult(node, "dev-davinci", False, expected, unparseable(text))
    ids = sorted(int(m.group(1)) for n in names if (m := re.match(r"^davinci(\d+)$", n)))
    missing_mgmt = [d for d in MANAGEMENT_DEVICES if d not in names]
    problems = []
    if missing_mgmt:
        problems.append("missing " + ", ".join(f"/dev/{d}" for d in missing_mgmt))
    seen = f"{len(ids)} davinciN devices" + (f" ({_ranges(ids)})" if ids else "")
    if problems:
        seen += "; " + "; ".join(problems)
    ok = len(ids) == expected_devices and not missing_mgmt
    return CheckResult(node, "dev-davinci", ok, expected, seen, {"davinci": ids, "missing_management": missing_mgmt})


# ---------------------------------------------------------------------------
# 3. Driver files + version.info
# ---------------------------------------------------------------------------

DEFAULT_VERSION_FILE = next(p for p in plan.DRIVER_PATHS if p.endswith("/version.info"))
_VERSION_MARK = "=== version.info"


@dataclass(frozen=True)
class DriverFiles:
    present: tuple[str, ...]
    missing: tuple[str, ...]
    version: str | None  # package_version if printed, else Version
    fields: Mapping[str, str]  # every key=value line of version.info
    version_error: str | None  # non key=value text printed by cat (e.g. "No such file")


def driver_files_command(paths: Sequence[str], version_file: str = DEFAULT_VERSION_FILE) -> str:
    """Prints ``present <path>`` / ``missing <path>`` per path, then a
    ``=== version.info`` marker and the content of ``version_file``."""
    words = " ".join(_q(p) for p in paths)
    loop = (
        f'for p in {words}; do if [ -e "$p" ]; then echo "present $p"; else echo "missing $p"; fi; done; '
        if paths
        else ""
    )
    return f"{loop}echo {_q(_VERSION_MARK)}; cat {_q(version_file)} 2>&1 || true"


def parse_driver_files(output: str) -> DriverFiles | None:
    """``None`` if the output shows neither path lines nor the marker."""
    text = _text(output)
    present: list[str] = []
    missing: list[str] = []
    fields: dict[str, str] = {}
    other: list[str] = []
    seen_marker = False
    for line in text.splitlines():
        if not seen_marker:
            if line.strip() == _VERSION_MARK:
                seen_marker = True
            elif line.startswith("present "):
                present.append(line[len("present ") :])
            elif line.startswith("missing "):
                missing.append(line[len("missing ") :])
            elif line.strip():
                return None
            continue
        s = line.strip()
        if not s:
            continue
        if "=" in s and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", s):
            k, v = s.split("=", 1)
            fields[k.strip()] = v.strip()
        else:
            other.append(s)
    if not seen_marker:
        return None
    # Newer drivers print package_version=<release> next to Version=; on some
    # the Version field carries a component version (e.g. 7.35.23) instead.
    version = fields.get("package_version") or fields.get("Version") or fields.get("version")
    return DriverFiles(
        present=tuple(present),
        missing=tuple(missing),
        version=version or None,
        fields=fields,
        version_error=" ".join(other)[:120] or None,
    )


def judge_driver_files(
    node: str, output: str, paths: Sequence[str], version_file: str = DEFAULT_VERSION_FILE
) -> CheckResult:
    expected = f"{len(paths)} driver paths present and a driver version in {version_file}"
    parsed = parse_driver_files(output)
    if parsed is None:
        return CheckResult(node, "driver-files", False, expected, unparseable(output))
    reported = set(parsed.present) | set(parsed.missing)
    unreported = [p for p in paths if p not in reported]
    missing = [p for p in paths if p in parsed.missing] + unreported
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if parsed.version:
        vtext = f"driver {parsed.version}"
    else:
        why = parsed.version_error or "no Version= line"
        vtext = f"no driver version ({why})"
        problems.append(vtext)
    ok = not missing and parsed.version is not None
    seen = f"all present, {vtext}" if ok else "; ".join(problems)
    return CheckResult(
        node,
        "driver-files",
        ok,
        expected,
        seen,
        {"missing": missing, "version": parsed.version, "version_fields": dict(parsed.fields)},
    )


# ---------------------------------------------------------------------------
# 4. Docker
# ---------------------------------------------------------------------------


def docker_version_command() -> str:
    return "docker version --format " + shlex.quote("{{.Server.Version}}") + " 2>&1 || true"


_DOCKER_VERSION = re.compile(r"^\d+\.\d+(?:\.\d+)?[0-9A-Za-z.+~-]*$")


def judge_docker(node: str, output: str) -> CheckResult:
    text = _text(output).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    expected = "docker daemon reachable"
    if len(lines) == 1 and _DOCKER_VERSION.match(lines[0]):
        return CheckResult(node, "docker", True, expected, f"server {lines[0]}", {"version": lines[0]})
    if not lines:
        return CheckResult(node, "docker", False, expected, "empty output from docker version")
    flat = " ".join(" ".join(lines).split())
    return CheckResult(node, "docker", False, expected, f"docker error: {flat[:160]}", {"output": text})


# ---------------------------------------------------------------------------
# 5. Free space of the weights directory
# ---------------------------------------------------------------------------

_DF_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(.+?)\s*$")


def df_command(path: str) -> str:
    """``missing <path>`` when not a directory, else ``df -Pk <path>``."""
    q = _q(path)
    return f"if [ -d {q} ]; then df -Pk {q} 2>&1; else echo missing {q}; fi; true"


def parse_df(output: str) -> dict | None:
    """``{"filesystem","size_kib","used_kib","avail_kib","use_pct","mount"}``,
    ``{"missing": True}`` for a missing dir, ``None`` for garbage."""
    text = _text(output)
    for line in text.splitlines():
        if line.startswith("missing "):
            return {"missing": True}
        m = _DF_ROW.match(line.strip())
        if m:
            return {
                "filesystem": m.group(1),
                "size_kib": int(m.group(2)),
                "used_kib": int(m.group(3)),
                "avail_kib": int(m.group(4)),
                "use_pct": int(m.group(5)),
                "mount": m.group(6),
            }
    return None


def judge_free_space(node: str, output: str, path: str, min_free_gib: float) -> CheckResult:
    expected = f"at least {min_free_gib:g} GiB free in {path}"
    parsed = parse_df(output)
    if parsed is None:
        return CheckResult(node, "weights-disk", False, expected, unparseable(output))
    if parsed.get("missing"):
        return CheckResult(node, "weights-disk", False, expected, f"directory {path} does not exist", parsed)
    free_gib = parsed["avail_kib"] / (1024 * 1024)
    seen = f"{free_gib:.1f} GiB free on {parsed['mount']} ({parsed['filesystem']})"
    return CheckResult(node, "weights-disk", free_gib >= min_free_gib, expected, seen, {**parsed, "free_gib": free_gib})


# ---------------------------------------------------------------------------
# 6. Host NIC carrying the node IP
# ---------------------------------------------------------------------------

# `ip -o addr show` prints one line per address, e.g.
#   2: enp189s0f0    inet 10.0.0.5/24 brd 10.0.0.255 scope global enp189s0f0\       valid_lft forever ...
#   2: enp189s0f0    inet6 fe80::1/64 scope link \       valid_lft forever ...
_IP_LINE = re.compile(r"^\s*\d+:\s+(\S+?)(?:@\S+)?\s+(inet6?)\s+([0-9A-Fa-f.:]+)/(\d+)\b")


def ip_addr_command() -> str:
    return "ip -o addr show 2>&1 || true"


def parse_ip_addr(output: str) -> list[tuple[str, str, int]] | None:
    """``[(ifname, address, prefixlen), ...]``; ``None`` if nothing parses."""
    rows = []
    for line in _text(output).splitlines():
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
        raise NicDiscoveryError(f"cannot find the NIC holding {want}: {unparseable(_text(output))}")
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
        return CheckResult(node, "nic-ip", False, f"{nic} to hold {ip}", f"configured IP {ip!r} is not an IP address")
    expected = f"{nic} to hold {want}"
    rows = parse_ip_addr(output)
    if rows is None:
        return CheckResult(node, "nic-ip", False, expected, unparseable(output))
    on_nic = [f"{a}/{p}" for n, a, p in rows if n == nic]
    holders = sorted({n for n, a, _ in rows if a == want})
    detail = {"addresses": [{"nic": n, "address": a, "prefixlen": p} for n, a, p in rows]}
    if nic in holders:
        return CheckResult(node, "nic-ip", True, expected, f"{nic} holds {want}", detail)
    if holders:
        seen = f"{want} is on {', '.join(holders)}"
    elif on_nic:
        seen = f"{nic} holds {', '.join(on_nic)}"
    elif any(n == nic for n, _, _ in rows):
        seen = f"{nic} has no address"
    else:
        seen = f"no interface named {nic} with an address, and no interface holds {want}"
    return CheckResult(node, "nic-ip", False, expected, seen, detail)


# ---------------------------------------------------------------------------
# 7. NPU network (hccn_tool), one SSH call per host
# ---------------------------------------------------------------------------

DEFAULT_HCCN_TOOL = next(p for p in plan.DRIVER_PATHS if p.endswith("/tools/hccn_tool"))
_HCCN_QUERIES = (("link", "-link -g"), ("net_health", "-net_health -g"), ("ip", "-ip -g"), ("tls", "-tls -g"))
_SECTION = re.compile(r"^=== npu (\d+) (link|net_health|ip|tls)\s*$")


def _hccn_prelude(hccn_tool: str | None) -> str:
    if hccn_tool:
        return f"H={_q(hccn_tool)}; "
    # Non-login SSH shells often lack the driver tools dir on PATH.
    return f"H=$(command -v hccn_tool || echo {_q(DEFAULT_HCCN_TOOL)}); "


def hccn_command(npu_count: int, hccn_tool: str | None = None) -> str:
    """Loop i=0..npu_count-1 printing ``=== npu <i> <query>`` then the output
    of ``hccn_tool -i <i> -link -g`` / ``-net_health -g`` / ``-ip -g`` /
    ``-tls -g``.  Sequential on purpose: hccn_tool refuses concurrent calls
    ("hccn_tool is busy, please try again")."""
    n = int(npu_count)
    if n < 1:
        raise ValueError("npu_count must be >= 1")
    body = "; ".join(f'echo "=== npu $i {name}"; "$H" -i "$i" {args} 2>&1' for name, args in _HCCN_QUERIES)
    return _hccn_prelude(hccn_tool) + f'i=0; while [ "$i" -lt {n} ]; do {body}; i=$((i+1)); done; echo "=== end"; true'


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
    for line in _text(output).splitlines():
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
        return CheckResult(node, "npu-network", False, expected, bad or unparseable(output))
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
        return CheckResult(node, "npu-network", False, expected, "; ".join(problems), detail)
    return CheckResult(node, "npu-network", True, expected, f"{npu_count} NPUs up, healthy, with IPs", detail)


def _switch_summary(values: Mapping[int, str | None]) -> str:
    groups: dict[str, list[int]] = {}
    for npu, v in values.items():
        groups.setdefault(v if v is not None else "unknown", []).append(npu)
    return ", ".join(f"NPU {_ranges(ids)} switch {v}" for v, ids in sorted(groups.items(), key=lambda kv: min(kv[1])))


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
                    node, "npu-tls", False, expected, _hccn_unusable(parse_hccn(outputs[node]), outputs[node]) or ""
                )
            )
            continue
        uniform = None not in vals.values() and len(set(vals.values())) == 1
        ok = uniform and reference is not None and next(iter(vals.values())) == reference[1]
        detail = {"tls": dict(vals), "reference": reference}
        if ok:
            seen = f"tls switch {reference[1]} on NPU {_ranges(vals)}"
        else:
            seen = _switch_summary(vals)
            if reference is not None and reference[0] != node:
                seen += f" (node {reference[0]} has switch {reference[1]})"
        results.append(CheckResult(node, "npu-tls", ok, expected, seen, detail))
    return results


# ---------------------------------------------------------------------------
# 8. Peer ping across nodes (hccn_tool -ping)
# ---------------------------------------------------------------------------

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
    parts = [_hccn_prelude(hccn_tool).rstrip("; ")]
    for t in targets:
        node = _token(t.peer_node, "peer node name")
        ip = str(ipaddress.ip_address(str(t.peer_ip).strip()))
        header = f"=== ping {int(t.local_npu)} {node} {int(t.peer_npu)} {ip}"
        if ":" in ip:
            query = f"-ping -inet6 -g ipv6_address {_q(ip)}"
        else:
            query = f"-ping -g address {_q(ip)}"
        parts.append(f'echo {_q(header)}; "$H" -i {int(t.local_npu)} {query} 2>&1')
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
    for line in _text(output).splitlines():
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
            return CheckResult(node, "npu-ping", True, expected, "nothing to ping")
        return CheckResult(node, "npu-ping", False, expected, unparseable(output))
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
    return CheckResult(node, "npu-ping", not failures and total > 0, expected, seen, detail)


def _canon(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


# ---------------------------------------------------------------------------
# 9. Other containers holding NPUs
# ---------------------------------------------------------------------------
# npu-smi lists processes, not containers, and during a replacement our own running container
# holds the NPUs legitimately; Docker knows which container was given which device.

_HOLDER_MARK = "=== container "


def npu_holders_command(stack_label: str) -> str:
    """Every running container's name, its value of `stack_label` and the host devices it was given."""
    fmt = f'{{{{.Name}}}} stack={{{{index .Config.Labels "{stack_label}"}}}} {{{{range .HostConfig.Devices}}}}{{{{.PathOnHost}}}} {{{{end}}}}'
    return (
        'ids=$(docker ps -q 2>&1) || { echo "docker ps failed: $ids"; exit 0; }; '
        "for id in $ids; do "
        f'echo {_q(_HOLDER_MARK.strip())} $(docker inspect --format {_q(fmt)} "$id" 2>&1); '
        "done; true"
    )


def judge_npu_holders(node: str, output: str, stack: str) -> CheckResult:
    """No container but this stack's own may hold a /dev/davinciN device (during a replacement,
    the stack's old container still runs; it is removed right before its successor starts)."""
    expected = f"no container outside stack {stack} holding /dev/davinciN"
    text = _text(output)
    holders, own = [], []
    for line in text.splitlines():
        if not line.startswith(_HOLDER_MARK):
            if line.strip():
                return CheckResult(node, "npu-free", False, expected, unparseable(text))
            continue
        fields = line[len(_HOLDER_MARK) :].split()
        # Docker names start with '/'; a container without the label shows "stack=" (or
        # "stack=<no value>", depending on the Docker version).
        if len(fields) < 2 or not fields[0].startswith("/") or not fields[1].startswith("stack="):
            return CheckResult(node, "npu-free", False, expected, unparseable(line))
        name, owner = fields[0].lstrip("/"), fields[1].removeprefix("stack=")
        davinci = sorted(int(m.group(1)) for f in fields[2:] if (m := re.search(r"davinci(\d+)$", f)))
        if davinci and owner != stack:
            holders.append(f"container {name} holds NPU {_ranges(davinci)}")
        elif davinci:
            own.append(name)
    seen = "; ".join(holders) if holders else "none"
    return CheckResult(node, "npu-free", not holders, expected, seen, {"holders": holders, "own": own})
