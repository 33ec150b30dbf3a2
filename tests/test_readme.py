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


# Folders whose every module the layout table names one by one; `policy/` and `sim/` have READMEs of their own.
ONE_BY_ONE = ("core", "checks", "components", "ops", "supervision", "scripts", "benchmarks")


def _layout_paths() -> set[str]:
    paths = set()
    for row in _table_after("## Layout"):
        folder = ""
        for entry in re.findall(r"`([^`]+)`", row[0]):
            if "/" in entry.rstrip("/"):
                folder = entry.rstrip("/").rsplit("/", 1)[0] + "/"
                paths.add(entry)
            else:
                paths.add(folder + entry)
    # A folder is named by naming what is in it.
    return paths | {path.split("/")[0] + "/" for path in paths if "/" in path.rstrip("/")}


def _product_files() -> set[str]:
    top = {
        p.name + ("/" if p.is_dir() else "")
        for p in ROOT.iterdir()
        if not p.name.startswith(".") and p.name not in ("README.md", "build", "__pycache__")
    }
    modules = {
        str(p.relative_to(ROOT))
        for folder in ONE_BY_ONE
        for p in (ROOT / folder).iterdir()
        if p.is_file() and p.name != "__init__.py"
    }
    tests = {f"tests/{p.name}/" for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    return top | modules | tests | {".ci/run"}


def test_the_layout_table_names_every_product_folder_and_module_and_nothing_else():
    listed = _layout_paths()
    assert _product_files() - listed == set()  # missing from the table
    assert {p for p in listed if not (ROOT / p).exists()} == set()  # in the table, not in the tree
