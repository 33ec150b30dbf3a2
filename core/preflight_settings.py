"""The `preflight` section: the host checks before any container, and the site's own rows of the
pairing table they judge the image against (checks/compatibility.toml)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from .section import Section
from .section import no_control_characters as _no_control_characters


class Preflight(Section):
    """Host checks before any container: NPUs, driver files, Docker, disk, NIC, NPU links, and the
    node's image against its driver and chip."""

    class CompatOverride(Section):
        """A row of the pairing table (checks/compatibility.toml) a site sets itself, with its reason:
        either a CANN version's driver range (`cann`, `driverMin`, `driverNewest`) or a SoC's family
        and HBM (`soc`, `family`, `hbmGb`). The checks' messages quote the reason."""

        cann: str | None = None
        driver_min: str | None = None
        driver_newest: str | None = None
        soc: str | None = None
        family: Literal["atlas-800-a3", "atlas-800-a2"] | None = None
        hbm_gb: int | None = Field(default=None, gt=0)
        reason: str = Field(min_length=1, max_length=200)

        @field_validator("cann", "driver_min", "driver_newest")
        @classmethod
        def _version(cls, v: str | None) -> str | None:
            # As Huawei prints them: 8.5.1, 8.3.RC2, 25.0.rc1.1, 26.1.0.b061.
            if v is not None and not re.fullmatch(r"\d+(\.(\d+|[A-Za-z]+\d+))+", v):
                raise ValueError(f"{v!r} is not a version; use one as npu-smi or CANN print it, e.g. 25.5.0 or 8.5.1")
            return v

        @field_validator("soc")
        @classmethod
        def _soc(cls, v: str | None) -> str | None:
            if v is not None and not re.fullmatch(r"Ascend[A-Za-z0-9_-]{1,24}", v):
                raise ValueError(f"{v!r} is not a SoC name; use one as the checks report it, e.g. Ascend910B4")
            return v

        @field_validator("reason")
        @classmethod
        def _reason(cls, v: str) -> str:
            return _no_control_characters(v)

    enabled: bool = True
    min_free_gib: float = Field(default=50, ge=0)
    # NPU i pings NPU i of every other node (one RoCE plane per index), or every NPU pair.
    ping_pairs: Literal["same-index", "all"] = "same-index"
    compat_overrides: list[CompatOverride] = []

    @field_validator("compat_overrides")
    @classmethod
    def _one_kind_each(cls, rows: list[CompatOverride]) -> list[CompatOverride]:
        for i, row in enumerate(rows):
            if row.cann and not (row.driver_min and row.driver_newest and row.soc is row.family is row.hbm_gb is None):
                raise ValueError(f"row {i} sets cann: it needs driverMin and driverNewest, and no soc, family or hbmGb")
            if not row.cann and not (row.soc and row.family and row.driver_min is None and row.driver_newest is None):
                raise ValueError(
                    f"row {i}: set either cann with driverMin and driverNewest, or soc with family (and hbmGb)"
                )
        return rows
