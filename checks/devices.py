"""`ls /dev`: the NPU device nodes a container gets (`dev-davinci`)."""

from __future__ import annotations

import re

from core import plan

from .common import CheckResult, as_text, quote, ranges, unparseable

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "dev-davinci"

MANAGEMENT_DEVICES = tuple(path.removeprefix("/dev/") for path in plan.MANAGEMENT_DEVICES)


def dev_list_command(dev_dir: str = "/dev") -> str:
    """One name per line of the device directory."""
    return f"ls -1 {quote(dev_dir)} 2>&1 || true"


_LS_NAME = re.compile(r"^[A-Za-z0-9_.:+@-]+$")


def judge_dev_davinci(node: str, output: str, expected_devices: int) -> CheckResult:
    text = as_text(output)
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    expected = f"{expected_devices} /dev/davinciN devices plus {', '.join(MANAGEMENT_DEVICES)}"
    if not names or not all(_LS_NAME.match(n) for n in names):
        return CheckResult(node, CHECK, False, expected, unparseable(text))
    ids = sorted(int(m.group(1)) for n in names if (m := re.match(r"^davinci(\d+)$", n)))
    missing_mgmt = [d for d in MANAGEMENT_DEVICES if d not in names]
    problems = []
    if missing_mgmt:
        problems.append("missing " + ", ".join(f"/dev/{d}" for d in missing_mgmt))
    seen = f"{len(ids)} davinciN devices" + (f" ({ranges(ids)})" if ids else "")
    if problems:
        seen += "; " + "; ".join(problems)
    ok = len(ids) == expected_devices and not missing_mgmt
    return CheckResult(node, CHECK, ok, expected, seen, {"davinci": ids, "missing_management": missing_mgmt})
