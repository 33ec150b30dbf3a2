"""The README names what the code names: a newcomer reading it finds the same checks and files."""

from __future__ import annotations

import re
from pathlib import Path

from checks import devices, disk, docker, driver_files, hccn, nic, npu_holders, npu_smi, ping

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _table_after(heading: str) -> list[list[str]]:
    """The rows (cells split on `|`, header and rule dropped) of the first table after `heading`."""
    rest = README[README.index(heading) :]
    lines = rest[rest.index("\n|") + 1 :].splitlines()
    rows = lines[: next(i for i, line in enumerate(lines) if not line.startswith("|"))]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_the_checks_table_lists_exactly_the_checks_the_code_names():
    modules = (devices, disk, docker, driver_files, hccn, nic, npu_holders, npu_smi, ping)
    names = {value for m in modules for key, value in vars(m).items() if key == "CHECK" or key.endswith("_CHECK")}
    table = {re.match(r"`([^`]+)`", row[0]).group(1) for row in _table_after("### What `pulumi up` checks")}
    assert table == names
    assert len(names) == 11
