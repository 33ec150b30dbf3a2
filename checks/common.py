"""What every host check shares: the result type and shell quoting.

A check is a *command* (a POSIX `sh` string run on the node) and a pure *judge* of its stdout
returning `CheckResult`s (`steps` pairs them by check name). Commands end with exit status 0 on
purpose: a missing tool or a failing sub-command is printed (`2>&1`) and judged, so the user reads
a precise message instead of a bare "exit status 127". Judges never raise on bad input: garbage yields `ok=False`
with `seen` starting with "unparseable output: ". Only the standard library is used.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field


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


def unparseable(text: str | None) -> str:
    """The ``seen`` phrase for output we cannot make sense of."""
    if text is None or not text.strip():
        return "empty output"
    flat = " ".join(str(text).split())
    return f"unparseable output: {flat[:80]}"


def as_text(output: object) -> str:
    """Coerce whatever Pulumi handed us into ``str`` without raising."""
    if output is None:
        return ""
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output if isinstance(output, str) else str(output)


def quote(value: str) -> str:
    value = str(value)
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"refusing to put a line break or NUL into a shell command: {value!r}")
    return shlex.quote(value)


_SAFE_TOKEN = re.compile(r"[A-Za-z0-9._:@+-]+")


def token(value: str, what: str) -> str:
    """Values echoed into section headers must be single safe tokens."""
    value = str(value)
    # The whole value: `re.match` with `$` would let a trailing newline through.
    if not _SAFE_TOKEN.fullmatch(value):
        raise ValueError(f"{what} must be a single token of [A-Za-z0-9._:@+-], got {value!r}")
    return value


def ranges(numbers: Iterable[int]) -> str:
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
