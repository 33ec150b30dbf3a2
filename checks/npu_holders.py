"""`docker ps` + `docker inspect`: no container outside this stack holds an NPU (`npu-free`)."""

from __future__ import annotations

import re

from .common import CheckResult, as_text, quote, ranges, unparseable

# The check's name: its resource `<node>-check-<name>`, its message and the README's table.
CHECK = "npu-free"

# npu-smi lists processes, not containers, and during a replacement our own running container
# holds the NPUs legitimately; Docker knows which container was given which device.

_HOLDER_MARK = "=== container "


def npu_holders_command(stack_label: str) -> str:
    """Every running container's name, its value of `stack_label` and the host devices it was given."""
    fmt = f'{{{{.Name}}}} stack={{{{index .Config.Labels "{stack_label}"}}}} {{{{range .HostConfig.Devices}}}}{{{{.PathOnHost}}}} {{{{end}}}}'
    return (
        'ids=$(docker ps -q 2>&1) || { echo "docker ps failed: $ids"; exit 0; }; '
        "for id in $ids; do "
        f'echo {quote(_HOLDER_MARK.strip())} $(docker inspect --format {quote(fmt)} "$id" 2>&1); '
        "done; true"
    )


def judge_npu_holders(node: str, output: str, stack: str) -> CheckResult:
    """No container but this stack's own may hold a /dev/davinciN device (during a replacement,
    the stack's old container still runs; it is removed right before its successor starts)."""
    expected = f"no container outside stack {stack} holding /dev/davinciN"
    text = as_text(output)
    holders, own = [], []
    for line in text.splitlines():
        if not line.startswith(_HOLDER_MARK):
            if line.strip():
                return CheckResult(node, CHECK, False, expected, unparseable(text))
            continue
        fields = line[len(_HOLDER_MARK) :].split()
        # Docker names start with '/'; a container without the label shows "stack=" (or
        # "stack=<no value>", depending on the Docker version).
        if len(fields) < 2 or not fields[0].startswith("/") or not fields[1].startswith("stack="):
            return CheckResult(node, CHECK, False, expected, unparseable(line))
        name, owner = fields[0].lstrip("/"), fields[1].removeprefix("stack=")
        davinci = sorted(int(m.group(1)) for f in fields[2:] if (m := re.search(r"davinci(\d+)$", f)))
        if davinci and owner != stack:
            holders.append(f"container {name} holds NPU {ranges(davinci)}")
        elif davinci:
            own.append(name)
    seen = "; ".join(holders) if holders else "none"
    return CheckResult(node, CHECK, not holders, expected, seen, {"holders": holders, "own": own})
