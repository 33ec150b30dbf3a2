"""The simulator reads the command line with the flags of the vllm it is told (subprocesses, no Docker)."""

import pytest
from simhelpers import MODEL


@pytest.mark.parametrize("version", ["0.13.0", "0.18.0", "0.23.0"])
def test_it_is_the_vllm_it_is_told(sim, version):
    rc, log = sim.run(["--version"], extra={"VLLM_SIM_VLLM_VERSION": version})
    assert (rc, log.strip()) == (0, version)


@pytest.mark.parametrize(
    "version,message",
    [
        # -ep is --enable-expert-parallel from vllm 0.18 on; 0.13 knows no such option.
        ("0.13.0", "error: unrecognized arguments: -ep"),
        # Read: the start-up checks after the parser then stop it.
        ("0.18.0", "--data-parallel-size must be >= 1, got 0"),
    ],
)
def test_it_reads_that_vllms_flags(sim, version, message):
    rc, log = sim.run(["serve", MODEL, "-ep", "--data-parallel-size", "0"], extra={"VLLM_SIM_VLLM_VERSION": version})
    assert rc != 0 and message in log


def test_a_vllm_it_has_no_flags_of_stops_it_naming_those_it_has(sim):
    rc, log = sim.run(["--version"], extra={"VLLM_SIM_VLLM_VERSION": "0.11.0"})
    assert rc == 1
    assert log.strip() == (
        "vllm-sim: ERROR: VLLM_SIM_VLLM_VERSION: no table of vllm 0.11.0's flags; the tables are of vllm "
        "0.13.0, 0.18.0, 0.23.0"
    )
