"""Renaming a node: with nodes[i].renamedFrom the engine replaces its container in place; never
two containers on the same NPUs."""

import copy

import pytest
from engine_double import EngineDouble, most_at_once
from mocked import stack_settings

from core.config import ConfigError, load_config


@pytest.fixture(scope="module")
def a2():
    return stack_settings("a2")


def renamed(a2: dict, **node_1) -> dict:
    raw = copy.deepcopy(a2)
    raw["nodes"][1].update(node_1)
    return raw


CONTAINERS = {"a2-0-vllm": "192.0.2.11", "a2-1-vllm": "192.0.2.12", "b-1-vllm": "192.0.2.12"}


def test_a_renamed_node_takes_over_its_container_and_the_group_restarts_together(a2):
    engine = EngineDouble(stack="a2")
    engine.up(a2)
    run = engine.up(renamed(a2, name="b-1", renamedFrom="a2-1"))
    assert run.error is None
    # Replaced under the new name, the old one deleted first; the head restarts with it.
    assert run.before(("delete-replaced", "a2-1-vllm"), ("create-replacement", "b-1-vllm"))
    assert run.before(("delete-replaced", "a2-0-vllm"), ("create-replacement", "a2-0-vllm"))
    assert most_at_once(run, CONTAINERS) == {"192.0.2.11": 1, "192.0.2.12": 1}
    names = {name for _, name in run.steps}
    assert not names & {"a2-1-docker", "b-1-docker", "a2-1-image", "b-1-image", "a2-1-machine", "b-1-machine"}
    assert not [saved.name for saved in engine.state.values() if saved.name.startswith("a2-1")]
    assert engine.up(renamed(a2, name="b-1", renamedFrom="a2-1")).steps == []


def test_without_renamed_from_the_engine_would_start_a_second_container_first(a2):
    """Why the key exists: a new name is a new resource, created before the old one is deleted."""
    engine = EngineDouble(stack="a2")
    engine.up(a2)
    run = engine.up(renamed(a2, name="b-1"))
    assert most_at_once(run, CONTAINERS)["192.0.2.12"] == 2


def test_a_renamed_node_keeps_its_observability_containers_too():
    local = stack_settings("local")
    engine = EngineDouble(stack="local")
    assert engine.up(local).error is None
    renamed_local = copy.deepcopy(local)
    renamed_local["nodes"][0].update(name="sim-a", renamedFrom="sim-0")
    run = engine.up(renamed_local)
    assert run.error is None
    by_name = {
        "sim-0-vllm": "vllm-sim-0",
        "sim-a-vllm": "vllm-sim-0",
        "sim-0-prometheus": "local-prometheus",
        "sim-a-prometheus": "local-prometheus",
    }
    assert most_at_once(run, by_name) == {"vllm-sim-0": 1, "local-prometheus": 1}
    assert not {name for _, name in run.steps} & {"sim-0-prometheus-image", "sim-a-prometheus-image"}


@pytest.mark.parametrize(
    "node_0, node_1, message",
    [
        (
            {},
            {"renamedFrom": "a2-0"},
            "nodes[1].renamedFrom: 'a2-0' is nodes[0].name; only a name no node has any more can be taken over",
        ),
        ({}, {"renamedFrom": "a2-1"}, "nodes[1].renamedFrom: 'a2-1' is the node's own name; remove renamedFrom"),
        (
            {"name": "b-0", "renamedFrom": "old"},
            {"renamedFrom": "old"},
            "nodes[1].renamedFrom: 'old' is also nodes[0].renamedFrom; one former node becomes one node",
        ),
        (
            {},
            {"renamedFrom": "A2_1"},
            "nodes[1].renamedFrom: 'A2_1' is not a valid node name; use 1-40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        ),
    ],
)
def test_renamed_from_must_name_one_former_node(a2, node_0, node_1, message):
    raw = renamed(a2, **node_1)
    raw["nodes"][0].update(node_0)
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    assert caught.value.problems == [message]
