"""`npu-smi info -t board`: each NPU's running firmware and npu-smi's driver-to-firmware
`Compatibility`, the chip's SoC and the HBM per NPU (`npu-board`).

`npu-smi info -t board -i <id>` prints `Key : value` lines (`Software Version`, `Firmware
Version`, `Compatibility`: OK, NOK, UNKNOWN, or NOT SUPPORT, also what a non-root user sees);
with `-c 0` it names the chip: `Chip Type : Ascend` + `Chip Name : 910B4` on A2 (SoC
Ascend910B4), `Chip Name : Ascend910` + `NPU Name : 9392` on A3 (SoC Ascend910_9392). The HBM
comes from the `npu-smi info` table (`HBM-Usage(MB)` used / total), read by `npu_smi`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import compat, npu_smi
from .common import CheckResult, as_text, ranges, unparseable

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "npu-board"

_SECTION = re.compile(r"^=== (board|chip) (\d+)$")
_END = "=== end"
_FIELD = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 ()/-]*?)\s*:\s*(.*?)\s*$")
# What npu-smi prints when it cannot tell (not root, or an old npu-smi): a warning, not a refusal.
UNSURE = ("UNKNOWN", "NOT SUPPORT")


@dataclass(frozen=True)
class Board:
    npu_id: int
    software: str | None
    firmware: str | None
    compatibility: str | None


@dataclass(frozen=True)
class BoardInfo:
    boards: tuple[Board, ...]
    soc: str | None  # of NPU 0's chip 0: one server carries one chip model
    hbm_mb: tuple[int, ...]  # total HBM of every chip the npu-smi table lists


def board_command(npu_ids: int) -> str:
    """The `npu-smi info` table, each NPU's board, NPU 0's chip 0, and an end marker, so a cut-off
    output is told from a complete one."""
    boards = "; ".join(f"echo '=== board {i}'; npu-smi info -t board -i {i} 2>&1" for i in range(int(npu_ids)))
    return f"npu-smi info 2>&1; {boards}; echo '=== chip 0'; npu-smi info -t board -i 0 -c 0 2>&1; echo '{_END}'"


def fields(text: str) -> dict[str, str]:
    """`Key : value` lines; the first colon splits (values like a PCIe address hold more)."""
    found = {}
    for line in as_text(text).splitlines():
        m = _FIELD.match(line)
        if m:
            found.setdefault(m.group(1), m.group(2))
    return found


def chip_soc(chip: dict[str, str]) -> str | None:
    """The SoC a chip section names (see the module's note), or None."""
    name, npu_name, kind = chip.get("Chip Name"), chip.get("NPU Name"), chip.get("Chip Type", "")
    if not name or name.upper() == "NA":
        return None
    if npu_name and npu_name.upper() != "NA":
        return f"{name}_{npu_name}"
    return name if name.lower().startswith(kind.lower()) else f"{kind}{name}"


def parse_board(output: str) -> BoardInfo | None:
    """None unless every section is there up to the end marker."""
    text = as_text(output)
    lines = text.splitlines()
    if _END not in (line.strip() for line in lines):
        return None
    table: list[str] = []
    sections: dict[tuple[str, int], list[str]] = {}
    current: list[str] = table
    for line in lines:
        m = _SECTION.match(line.strip())
        if m:
            current = sections.setdefault((m.group(1), int(m.group(2))), [])
        elif line.strip() != _END:
            current.append(line)
    boards = []
    for (kind, npu_id), body in sorted(sections.items()):
        if kind != "board":
            continue
        f = fields("\n".join(body))
        boards.append(Board(npu_id, f.get("Software Version"), f.get("Firmware Version"), f.get("Compatibility")))
    chip = fields("\n".join(sections.get(("chip", 0), [])))
    info = npu_smi.parse_npu_smi("\n".join(table))
    hbm = tuple(d.hbm_total_mb for d in info.devices if d.hbm_total_mb) if info else ()
    if not boards or not any(b.compatibility or b.firmware for b in boards):
        return None
    return BoardInfo(tuple(boards), chip_soc(chip), hbm)


def judge_npu_board(
    node: str,
    output: str,
    profile: str,
    npu_ids: int,
    hbm_gb_needed: int,
    hbm_reason: str,
    table: compat.Table,
) -> CheckResult:
    """Refuses npu-smi's `Compatibility: NOK`, a chip of another family than `profile`, and less
    HBM per NPU than `hbm_gb_needed` (the layout's share of model.requiredHbmGb); warns on an
    unsure Compatibility and a chip the table does not know. `detail["fix"]` is the way forward."""
    expected = (
        f"{npu_ids} NPU boards with a compatible firmware, {profile} chips, "
        f"at least {hbm_gb_needed} GB of HBM per NPU ({hbm_reason})"
    )
    info = parse_board(output)
    if info is None:
        return CheckResult(node, CHECK, False, expected, unparseable(output))
    warnings: list[str] = []
    firmware = {str(b.npu_id): b.firmware for b in info.boards}
    report = {"soc": info.soc, "firmware": firmware, "warnings": warnings}
    missing = sorted(set(range(npu_ids)) - {b.npu_id for b in info.boards if b.compatibility or b.firmware})
    if missing:
        seen = f"no board answer for NPU {ranges(missing)}"
        return CheckResult(node, CHECK, False, expected, seen, report | {"fix": "check the NPUs with `npu-smi info`"})
    nok = [b for b in info.boards if (b.compatibility or "").upper() == "NOK"]
    if nok:
        b = nok[0]
        seen = f"Compatibility NOK on NPU {ranges(x.npu_id for x in nok)} (driver {b.software}, firmware {b.firmware})"
        fix = "install a firmware the driver's version.info lists (compatible_version_fw) and reboot the node"
        return CheckResult(node, CHECK, False, expected, seen, report | {"fix": fix})
    unsure = [b for b in info.boards if (b.compatibility or "UNKNOWN").upper() in UNSURE]
    if unsure:
        words = sorted({b.compatibility or "UNKNOWN" for b in unsure})
        warnings.append(
            f"node {node}: npu-smi says Compatibility {' / '.join(words)} on NPU {ranges(b.npu_id for b in unsure)}, "
            "so the firmware was not checked against the driver; run the checks as root to have it checked"
        )
    row = table.for_soc(info.soc) if info.soc else None
    if row is None:
        warnings.append(
            f"node {node}: chip {info.soc or 'unknown'} is not in the pairing table, so its family and HBM are "
            f"not checked; add it with {compat.OVERRIDE_KEY} if it is known to be a {profile} chip"
        )
    elif row.family != profile:
        seen = f"{info.soc}, an {row.family} chip{compat.overridden(row.source)}"
        fix = f"set profile: {row.family}, or deploy this stack on {profile} nodes"
        return CheckResult(node, CHECK, False, expected, seen, report | {"family": row.family, "fix": fix})
    hbm_gb = min(info.hbm_mb) // 1024 if info.hbm_mb else (row.hbm_gb if row else None)
    report["hbmGbPerNpu"] = hbm_gb
    if hbm_gb is not None and hbm_gb < hbm_gb_needed:
        seen = f"{hbm_gb} GB of HBM per NPU on {info.soc or 'this chip'}"
        fix = "use nodes whose NPUs hold more HBM, or more nodes (nodes, serve.dataParallelSize)"
        return CheckResult(node, CHECK, False, expected, seen, report | {"fix": fix})
    seen = f"{len(info.boards)} boards OK, {info.soc}, {hbm_gb if hbm_gb is not None else 'unknown'} GB HBM per NPU"
    return CheckResult(node, CHECK, True, expected, seen, report)
