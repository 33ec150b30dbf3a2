"""`preflight.compatOverrides`: a site's rows of the pairing table, validated like every key, shown
in `pulumi preview` (the checks' specs carry them) and, when changed, judged anew by the checks
that read them, and by no other step."""

from __future__ import annotations

import copy
import json
import shlex

import pytest
from engine_double import EngineDouble
from mocked import run_program, stack_settings
from test_scenarios import Site

from core.config import ConfigError, load_config

ROW = {"cann": "8.5.1", "driverMin": "25.5", "driverNewest": "26.0", "reason": "ran 26.0.RC1 here for a month"}


def with_rows(*rows: dict) -> dict:
    raw = copy.deepcopy(stack_settings("a2"))
    raw["preflight"] = {"compatOverrides": list(rows)}
    return raw


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            {"cann": "8.5.1", "reason": "x"},
            "preflight.compatOverrides: row 0 sets cann: it needs driverMin and driverNewest, and no soc, family or hbmGb",
        ),
        (
            {"soc": "Ascend910B4", "reason": "x"},
            "preflight.compatOverrides: row 0: set either cann with driverMin and driverNewest, or soc with family "
            "(and hbmGb)",
        ),
        (
            {k: v for k, v in ROW.items() if k != "reason"},
            "preflight.compatOverrides[0].reason: required key is missing",
        ),
        (
            {**ROW, "cann": "8.5.1; rm -rf /"},
            "preflight.compatOverrides[0].cann: '8.5.1; rm -rf /' is not a version; use one as npu-smi or CANN print "
            "it, e.g. 25.5.0 or 8.5.1",
        ),
        (
            {"soc": "Ascend910B4", "family": "atlas-800-a9", "reason": "x"},
            "preflight.compatOverrides[0].family: 'atlas-800-a9' is not allowed; input should be 'atlas-800-a3' or "
            "'atlas-800-a2'",
        ),
    ],
)
def test_a_row_is_validated_like_every_key(row, problem):
    with pytest.raises(ConfigError) as caught:
        load_config(with_rows(row))
    assert caught.value.problems == [problem]


def test_the_rows_show_in_the_preview():
    preview = run_program(with_rows(ROW), stack="a2", preview=True)
    assert preview.error is None
    for node in ("a2-0", "a2-1"):
        argv = shlex.split(preview.named(f"{node}-check-npu-board").inputs["create"])
        assert json.loads(argv[4])["overrides"] == [ROW]


def test_a_changed_row_runs_again_only_the_checks_that_judge_by_it():
    config = stack_settings("a2")
    site = Site(config)
    engine = EngineDouble(stack="a2", runner=site)
    assert engine.up(config).error is None
    site.scripts.clear()
    again = engine.up(with_rows(ROW))
    assert again.error is None and not {"a2-0-vllm", "a2-1-vllm"} & set(again.replaced)
    assert sorted(site.contacted()) == [f"{n}-check-{c}" for n in ("a2-0", "a2-1") for c in ("image-host", "npu-board")]
