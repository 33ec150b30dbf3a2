"""The mounted driver paths and `version.info` (`driver-files`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core import plan

from .common import CheckResult, as_text, quote, unparseable

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "driver-files"

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
    words = " ".join(quote(p) for p in paths)
    loop = (
        f'for p in {words}; do if [ -e "$p" ]; then echo "present $p"; else echo "missing $p"; fi; done; '
        if paths
        else ""
    )
    return f"{loop}echo {quote(_VERSION_MARK)}; cat {quote(version_file)} 2>&1 || true"


def parse_driver_files(output: str) -> DriverFiles | None:
    """``None`` if the output shows neither path lines nor the marker."""
    text = as_text(output)
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
        return CheckResult(node, CHECK, False, expected, unparseable(output))
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
        CHECK,
        ok,
        expected,
        seen,
        {"missing": missing, "version": parsed.version, "version_fields": dict(parsed.fields)},
    )
