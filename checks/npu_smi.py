"""`npu-smi info`: NPU count and health (`npu-health`) and processes on the NPUs (`npu-idle`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .common import CheckResult, as_text, unparseable

# The checks' names: their resources `<node>-check-<name>`, their messages and the README's table.
HEALTH_CHECK = "npu-health"
IDLE_CHECK = "npu-idle"

# Layout of ``npu-smi info`` (documented table; see tests/fixtures/npu_smi):
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
    text = as_text(output)
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
            CheckResult(node, HEALTH_CHECK, False, f"{expected_devices} healthy NPUs", seen),
            CheckResult(node, IDLE_CHECK, False, "no processes on any NPU", seen),
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
        HEALTH_CHECK,
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
        IDLE_CHECK,
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
