"""The pairing table (`compatibility.toml`): CANN to driver range, SoC to family and HBM, and
how driver and CANN versions compare. Pure: the `npu-board` and `image-host` judges read it.

A site's `preflight.compatOverrides` rows replace or add rows, each carrying its reason as its
source, so a message decided by an overridden row says so.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TABLE_FILE = Path(__file__).with_name("compatibility.toml")
OVERRIDE_KEY = "preflight.compatOverrides"

_RC = re.compile(r"rc(\d+)")
# Builds and patches after the release (b061, spc001): they order after it, by their number.
_BUILD = re.compile(r"[a-z]+(\d+)")


@dataclass(frozen=True)
class CannRow:
    cann: str
    driver_min: str
    driver_newest: str
    source: str


@dataclass(frozen=True)
class SocRow:
    soc: str
    family: str
    hbm_gb: int | None
    source: str


@dataclass(frozen=True)
class Table:
    chips_per_npu: dict[str, int]
    cann: tuple[CannRow, ...]
    socs: tuple[SocRow, ...]

    def for_cann(self, version: str) -> CannRow | None:
        """The most specific row whose version is a prefix of `version` ("9.0" holds 9.0.1)."""
        key = version_key(version)
        if key is None:
            return None
        rows = [r for r in self.cann if (k := version_key(r.cann)) is not None and key[: len(k)] == k]
        return max(rows, key=lambda r: len(r.cann.split(".")), default=None)

    def for_soc(self, soc: str) -> SocRow | None:
        return next((r for r in self.socs if r.soc.lower() == soc.lower()), None)


def version_key(text: str) -> tuple[tuple[int, int], ...] | None:
    """`25.0.RC1.1` -> comparable parts; a release candidate sorts before the release of its
    number (25.0.rc1 < 25.0.0). None for what is no version (at least major.minor)."""
    parts = []
    for part in str(text).strip().lower().split("."):
        if part.isdigit():
            parts.append((1, int(part)))
        elif m := _RC.fullmatch(part):
            parts.append((0, int(m.group(1))))
        elif m := _BUILD.fullmatch(part):
            parts.append((2, int(m.group(1))))
        else:
            return None
    return tuple(parts) if len(parts) >= 2 else None


def at_least(version: str, bound: str) -> bool:
    """`version` reaches `bound` in the components the bound names (25.5.2 reaches 25.5)."""
    v, b = version_key(version), version_key(bound)
    return v is not None and b is not None and v[: len(b)] >= b


def at_most(version: str, bound: str) -> bool:
    """`version` is no newer than `bound` in the components the bound names (25.5.2 is at most 25.5)."""
    v, b = version_key(version), version_key(bound)
    return v is not None and b is not None and v[: len(b)] <= b


def load(overrides: Iterable[dict] = ()) -> Table:
    """The shipped table with the site's rows (the spec's camelCase keys) put in its place."""
    data = tomllib.loads(TABLE_FILE.read_text())
    cann = {r["cann"].lower(): CannRow(**r) for r in data["cann"]}
    socs = {r["soc"].lower(): SocRow(r["soc"], r["family"], r.get("hbm_gb"), r["source"]) for r in data["soc"]}
    for row in overrides:
        source = f"{OVERRIDE_KEY}: {row['reason']}"
        if row.get("cann"):
            cann[row["cann"].lower()] = CannRow(row["cann"], row["driverMin"], row["driverNewest"], source)
        else:
            socs[row["soc"].lower()] = SocRow(row["soc"], row["family"], row.get("hbmGb"), source)
    chips = {f["name"]: f["chips_per_npu"] for f in data["family"]}
    return Table(chips, tuple(cann.values()), tuple(socs.values()))


def overridden(source: str) -> str:
    """The note a message adds when a site's row decided it."""
    return f" (by {source})" if source.startswith(OVERRIDE_KEY) else ""
