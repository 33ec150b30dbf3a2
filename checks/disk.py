"""`df -Pk`: free space in the weights directory (`weights-disk`)."""

from __future__ import annotations

import re

from .common import CheckResult, as_text, quote, unparseable

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "weights-disk"

_DF_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(.+?)\s*$")


def df_command(path: str) -> str:
    """``missing <path>`` when not a directory, else ``df -Pk <path>``."""
    q = quote(path)
    return f"if [ -d {q} ]; then df -Pk {q} 2>&1; else echo missing {q}; fi; true"


def parse_df(output: str) -> dict | None:
    """``{"filesystem","size_kib","used_kib","avail_kib","use_pct","mount"}``,
    ``{"missing": True}`` for a missing dir, ``None`` for garbage."""
    text = as_text(output)
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
        return CheckResult(node, CHECK, False, expected, unparseable(output))
    if parsed.get("missing"):
        return CheckResult(node, CHECK, False, expected, f"directory {path} does not exist", parsed)
    free_gib = parsed["avail_kib"] / (1024 * 1024)
    seen = f"{free_gib:.1f} GiB free on {parsed['mount']} ({parsed['filesystem']})"
    return CheckResult(node, CHECK, free_gib >= min_free_gib, expected, seen, {**parsed, "free_gib": free_gib})
