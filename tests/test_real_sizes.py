"""Real sizes: a 10-20 GB image pull, a stop grace period, an hour-long readiness wait."""

import copy
import os
import stat
import subprocess

import pytest
from engine_double import EngineDouble
from mocked import COMMANDS, run_program, stack_settings

from checks.servicechecks import readiness_command
from core.config import ConfigError, load_config

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"


@pytest.fixture(scope="module")
def a2():
    return stack_settings("a2")


def with_settings(raw: dict, **sections) -> dict:
    raw = copy.deepcopy(raw)
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return raw


def test_image_pull_waits_three_hours_by_default_and_as_configured(a2):
    default = run_program(a2, stack="a2")
    assert [i.custom_timeouts for i in default.servers(IMAGE)] == [{"create": "180m"}] * 2
    slow = run_program(with_settings(a2, image={"pullTimeoutMinutes": 360}), stack="a2")
    assert [i.custom_timeouts for i in slow.servers(IMAGE)] == [{"create": "360m"}] * 2


def test_containers_get_a_stop_grace_period(a2):
    default = run_program(a2, stack="a2")
    assert [c.inputs["destroyGraceSeconds"] for c in default.servers()] == [60, 60]
    patient = run_program(with_settings(a2, container={"stopGraceSeconds": 300}), stack="a2")
    assert [c.inputs["destroyGraceSeconds"] for c in patient.servers()] == [300, 300]


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        (
            "image",
            "pullTimeoutMinutes",
            0,
            "image.pullTimeoutMinutes: got 0; input should be greater than or equal to 1",
        ),
        (
            "container",
            "stopGraceSeconds",
            -1,
            "container.stopGraceSeconds: got -1; input should be greater than or equal to 0",
        ),
    ],
)
def test_invalid_sizes_name_their_key(a2, section, key, value, message):
    with pytest.raises(ConfigError) as caught:
        load_config(with_settings(a2, **{section: {key: value}}))
    assert caught.value.problems == [message]


def test_a_new_grace_period_changes_running_containers_in_place(a2):
    engine = EngineDouble(stack="a2")
    engine.up(a2)
    run = engine.up(with_settings(a2, container={"stopGraceSeconds": 120}, image={"pullTimeoutMinutes": 600}))
    assert sorted(run.steps) == [("update", "a2-0-vllm"), ("update", "a2-1-vllm")]
    assert run.ran == []


def test_only_a_steps_short_report_comes_back_in_its_environment(a2):
    # A step's update replays its saved report from the environment (components/nodecommand.py);
    # what a step prints is that one JSON line, and a failure's one message, never the node's output.
    for config in (a2, stack_settings("local")):
        commands = [r for r in run_program(config).resources if r.type in COMMANDS]
        assert commands and all(c.inputs["addPreviousOutputInEnv"] is True for c in commands)
        assert all(len(c.inputs.get("stdout", "")) < 4096 for c in commands)


def test_readiness_reports_progress_every_minute_until_its_timeout(tmp_path):
    """Run the real script with a clock that advances 25 s per reading and an API that never answers."""
    stubs = {
        "curl": "exit 7",
        "sleep": "exit 0",
        "docker": 'echo "vllm log line"',
        "date": f'n=$(cat {tmp_path}/clock 2>/dev/null || echo 0); echo $((n + 25)) > {tmp_path}/clock; echo "$n"',
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    script = readiness_command("http://127.0.0.1:8000", "deepseek_r1", 200, 10, "vllm-ascend", "a2")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "waiting for http://127.0.0.1:8000 to serve deepseek_r1: 75s of 200s",
        "waiting for http://127.0.0.1:8000 to serve deepseek_r1: 125s of 200s",
    ]
    assert done.stderr.splitlines()[-2:] == [
        "vllm log line",
        "every node (containers, supervisors, npu-smi, hccn_tool, driver): python -m ops.diagnose a2",
    ]
