"""Several data-parallel groups behind the router: the config, the plan, the program, and a rollout
on the engine double (tests/engine_double.py), which follows the real engine's rules."""

from __future__ import annotations

import copy
import json
import shlex

import pytest
from engine_double import EngineDouble, most_out
from mocked import run_program, stack_settings

from core.config import ConfigError, load_config
from core.deployment import plan_deployment

GROUPS = {"blue": ("blue-0", "blue-1"), "green": ("green-0", "green-1")}


@pytest.fixture(scope="module")
def grouped():
    return stack_settings("a2-groups")


def problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load_config(raw)
    return error.value.problems


def planned(raw):
    return plan_deployment(load_config(raw), stack="a2-groups")


# --- the plan ---------------------------------------------------------------------------------------


def test_each_group_is_the_a2_stacks_group_with_its_own_fingerprint(grouped):
    deployment = planned(grouped)
    a2 = plan_deployment(load_config(stack_settings("a2")), stack="a2").cluster
    blue, green = deployment.groups
    assert [(g.group, [n.name for n in g.nodes]) for g in deployment.groups] == [
        (k, list(v)) for k, v in GROUPS.items()
    ]
    assert [n.role for n in blue.nodes] == ["head", "headless"]
    assert blue.group_fingerprint != green.group_fingerprint
    # The tutorial's command per group, plus the time vllm gets to finish requests on SIGTERM.
    for group, ips in ((blue, ("192.0.2.11", "192.0.2.12")), (green, ("192.0.2.13", "192.0.2.14"))):
        head, headless = group.nodes
        single = a2.nodes[0].argv
        assert head.argv == tuple(a.replace("192.0.2.11", ips[0]) for a in single) + ("--shutdown-timeout", "25")
        assert headless.argv[-2:] == ("--shutdown-timeout", "25")
        assert headless.argv[headless.argv.index("--data-parallel-address") + 1] == ips[0]


def test_the_router_routes_to_every_groups_head_behind_the_front_door(grouped):
    deployment = planned(grouped)
    router, door = deployment.router, deployment.front_door
    assert router.container.node == door.node == "blue-0"
    assert router.container.argv == (
        "vllm-router",
        "--worker-urls", "http://192.0.2.11:8000", "http://192.0.2.13:8000",
        "--host", "192.0.2.11", "--port", "30000",
        "--policy", "round_robin",
        "--health-check-interval-secs", "5",
        "--worker-startup-timeout-secs", "3600", "--worker-startup-check-interval", "5",
        "--cb-timeout-duration-secs", "15",
        "--prometheus-host", "192.0.2.11", "--prometheus-port", "29000",
    )  # fmt: skip
    assert router.container.image == "m.daocloud.io/docker.io/vllm/vllm-router:v0.1.17"
    (config,) = door.uploads
    # Only /v1 and /health reach the router: its admin routes stay out of clients' reach.
    assert "    server backend 192.0.2.11:30000 check" in config.content
    # The router's /health is 503 while any one group is down; /readiness while none serves.
    assert "    option httpchk GET /readiness\n" in config.content
    assert "unless { path_beg /v1/ } || { path /health }" in config.content
    assert deployment.endpoint == "http://192.0.2.11:8080/v1"
    assert [g.endpoint for g in deployment.groups] == ["http://192.0.2.11:8000/v1", "http://192.0.2.13:8000/v1"]


def test_a_stack_without_groups_plans_as_before():
    deployment = planned(stack_settings("a2"))
    assert deployment.router is None and [g.group for g in deployment.groups] == [None]
    assert "--shutdown-timeout" not in deployment.cluster.head.argv


def test_prometheus_scrapes_every_group_and_the_router(grouped):
    raw = {**grouped, "observability": {"enabled": True, "grafana": {"enabled": False}}}
    targets = planned(raw).observability.targets
    jobs = [(t.job, t.address, dict(t.labels).get("group")) for t in targets if t.job in ("vllm", "router")]
    assert jobs == [
        ("vllm", "192.0.2.11:8000", "blue"),
        ("vllm", "192.0.2.13:8000", "green"),
        ("router", "192.0.2.11:29000", None),
    ]


# --- validation --------------------------------------------------------------------------------------


def with_groups(grouped, groups=None, **changes):
    raw = copy.deepcopy(grouped)
    if groups is not None:
        raw["groups"] = groups
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("groups", "changes", "problem"),
    [
        (
            [{"name": "blue", "nodes": ["blue-0", "blue-1"]}, {"name": "green", "nodes": ["green-0", "gren-1"]}],
            {},
            "groups[1].nodes: 'gren-1' is not a node; use names from nodes: blue-0, blue-1, green-0, green-1",
        ),
        (
            [{"name": "blue", "nodes": ["blue-0", "blue-1"]}, {"name": "green", "nodes": ["blue-1", "green-0"]}],
            {},
            "groups[1].nodes: 'blue-1' is also in group blue; a node serves one group only",
        ),
        (
            [{"name": "blue", "nodes": ["blue-0", "blue-1"]}, {"name": "blue", "nodes": ["green-0", "green-1"]}],
            {},
            "groups[1].name: 'blue' names two groups; give each group its own name",
        ),
        (
            [{"name": "blue", "nodes": ["blue-0", "blue-1"]}, {"name": "green", "nodes": ["green-0"]}],
            {},
            "groups: green-1 in no group; list every node in one group",
        ),
        (
            None,
            {"router": {"node": "red-0"}},
            "router.node: 'red-0' is not a node; use one of blue-0, blue-1, green-0, green-1",
        ),
        (
            None,
            {"router": {"port": 9401}},
            "router.port: 9401 is also supervision.metricsPort; the router needs ports of its own on its node",
        ),
        (
            None,
            {"router": {"metricsPort": 8080}},
            "router.metricsPort: 8080 is also frontDoor.port; the router needs ports of its own on its node",
        ),
        (
            None,
            {"router": {"policy": "power_of_two"}},
            "router.policy: 'power_of_two' is not a router policy this deployment supports; use one of "
            "round_robin, cache_aware, random, consistent_hash",
        ),
        (
            None,
            {"frontDoor": {"enabled": False}},
            "frontDoor.enabled: the router's admin routes (/add_worker, /remove_worker) answer anyone on its port; "
            "several groups need the front door, which passes only /v1 and /health on to it",
        ),
        (
            None,
            {"image": {"tag": "v0.13.0"}},
            "image.vllmVersion: vllm 0.13.0 has no --shutdown-timeout, so a group stopped for a replacement would "
            "abort its requests; several groups need vllm 0.18.0 or later",
        ),
        (
            [{"name": "Blue", "nodes": ["blue-0", "blue-1"]}, {"name": "green", "nodes": ["green-0", "green-1"]}],
            {},
            "groups[0].name: 'Blue' is not a valid group name; use 1-20 lowercase letters, digits and '-', starting "
            "and ending with a letter or digit",
        ),
    ],
)
def test_a_grouping_that_cannot_work_is_refused_with_its_key(grouped, groups, changes, problem):
    assert problem in problems(with_groups(grouped, groups, **changes))


def test_each_groups_topology_is_judged_on_its_own_and_every_problem_shows_at_once(grouped):
    groups = [{"name": "blue", "nodes": ["blue-0", "blue-1", "green-0"]}, {"name": "green", "nodes": ["green-1"]}]
    found = problems(with_groups(grouped, groups, router={"port": 8000}))
    assert "router.port: 8000 is also serve.port; the router needs ports of its own on its node" in found
    assert any(
        p.startswith("groups[0] (blue): serve.tensorParallelSize: tensorParallelSize 4 x dataParallelSize 4")
        for p in found
    )
    assert any(p.startswith("groups[1] (green): nodes: 1 atlas-800-a2 node has 512 GB of NPU memory") for p in found)


def test_one_group_is_no_group(grouped):
    found = problems(with_groups(grouped, [{"name": "blue", "nodes": ["blue-0", "blue-1", "green-0", "green-1"]}]))
    assert "groups: one group is no group; list every node under nodes alone, or name two groups or more" in found


# --- the program ----------------------------------------------------------------------------------------


def step_of(resource, script: str) -> tuple[str, dict]:
    argv = shlex.split(resource.inputs[script])
    return argv[3], json.loads(argv[4])


def test_each_group_joins_the_router_after_its_containers_and_the_next_group_waits_for_that(grouped):
    deployment = run_program(grouped, stack="a2-groups")
    assert deployment.error is None, deployment.error
    blue, green = deployment.named("blue-router-membership"), deployment.named("green-router-membership")
    router = deployment.named("blue-0-router")
    assert router.inputs["command"][0] == "vllm-router" and not router.inputs.get("privileged")
    for membership, group in ((blue, "blue"), (green, "green")):
        step, spec = step_of(membership, "create")
        assert (step, spec["group"], spec["node"], spec["router"]) == (
            "join-router",
            group,
            "blue-0",
            "http://192.0.2.11:30000",
        )
        step, spec = step_of(membership, "delete")
        assert (step, spec["drainSeconds"]) == ("drain-from-router", 600)
        containers = [deployment.named(f"{n}-vllm") for n in GROUPS[group]]
        # The membership's inputs come from its group's containers: it leaves before they stop.
        assert membership.inputs["triggers"][1:] == [f"{c.name}-id" for c in containers]
        assert membership.delete_before_replace
        assert router.urn in membership.dependencies
    # Green's containers wait for blue's membership, through depends_on only.
    for node in GROUPS["green"]:
        assert blue.urn in deployment.named(f"{node}-vllm").dependencies
    for node in GROUPS["blue"]:
        assert green.urn not in deployment.named(f"{node}-vllm").dependencies
    outputs = deployment.outputs
    assert outputs["endpoint"] == "http://192.0.2.11:8080/v1"
    assert set(outputs["groups"]) == {"blue", "green"}
    assert outputs["groups"]["green"]["endpoint"] == "http://192.0.2.13:8000/v1"
    assert outputs["groups"]["green"]["router"] == {"joined": "when ready"}
    assert "nodes" not in outputs


# --- rollouts on the engine double --------------------------------------------------------------------------


def test_a_first_deployment_starts_every_group_at_once(grouped):
    run = EngineDouble(stack="a2-groups").up(grouped)
    assert run.error is None
    # Green's containers wait for blue's membership, which returns at once when nothing serves:
    # neither group waits for the other's readiness (the weight load).
    for node in GROUPS["green"]:
        assert not run.before(("create", "deepseek-r1-blue-readiness"), ("create", f"{node}-vllm"))
    for node in GROUPS["blue"]:
        assert not run.before(("create", "deepseek-r1-green-readiness"), ("create", f"{node}-vllm"))


def test_a_change_to_every_group_rolls_out_one_group_at_a_time(grouped):
    engine = EngineDouble(stack="a2-groups")
    engine.up(grouped)
    changed = copy.deepcopy(grouped)
    changed["serve"] = {"maxNumSeqs": 32}
    run = engine.up(changed)
    assert run.error is None
    assert {"blue-0-vllm", "green-0-vllm", "blue-router-membership", "green-router-membership"} <= set(run.replaced)
    # A group leaves the router (drained) before its containers stop, and is back before the next leaves.
    for group, nodes in GROUPS.items():
        for node in nodes:
            assert run.before(("delete-replaced", f"{group}-router-membership"), ("delete-replaced", f"{node}-vllm"))
            assert run.before(
                ("create-replacement", f"{node}-vllm"), ("create-replacement", f"{group}-router-membership")
            )
    for node in GROUPS["green"]:
        assert run.before(("create-replacement", "blue-router-membership"), ("delete-replaced", f"{node}-vllm"))
    memberships = {f"{g}-router-membership": g for g in GROUPS}
    assert most_out(run, memberships) == 1
    assert most_out(run, {f"{n}-vllm": g for g, nodes in GROUPS.items() for n in nodes}) == 1


def test_a_change_to_one_group_replaces_only_that_group(grouped):
    engine = EngineDouble(stack="a2-groups")
    engine.up(grouped)
    changed = copy.deepcopy(grouped)
    changed["nodes"][3]["nic"] = "eth1"  # green-1
    run = engine.up(changed)
    assert run.error is None
    replaced = set(run.replaced)
    assert {"green-0-vllm", "green-1-vllm", "green-router-membership"} <= replaced
    assert not {name for name in replaced if name.startswith("blue")}
    assert not [name for op, name in run.steps if name.startswith("blue") and op.startswith("delete")]


def test_cache_aware_routing_is_refused_with_an_api_key(grouped):
    raw = {**grouped, "router": {"policy": "cache_aware"}, "apiKey": "k3y"}
    with pytest.raises(ConfigError) as error:
        load_config(raw, secret_keys=frozenset({"apiKey"}))
    assert any(p.startswith("router.policy: cache_aware has the router tokenize") for p in error.value.problems)
    assert load_config({**grouped, "router": {"policy": "cache_aware"}}).router.policy == "cache_aware"


# --- the policy pack ------------------------------------------------------------------------------------


def test_the_policy_pack_judges_each_group_apart_and_knows_the_router():
    from policy_harness import graph, messages, mutate, run, set_input

    grouped = graph("a2-groups")
    assert run(grouped) == []
    # Each group keeps its one-head rule: green without a head is still a broken group.
    headless = mutate(grouped, "green-0-vllm", lambda inputs: inputs["command"].append("--headless"))
    found = messages(run(headless, only="vllm-dp-group-consistent"), "vllm-dp-group-consistent")
    assert found == [
        "node green-0: every node runs --headless, so no node serves the API or coordinates the group; "
        "remove --headless from the first node (green-0)"
    ]
    # The router is a container like any other: never privileged, its image pinned.
    privileged = run(
        mutate(grouped, "blue-0-router", set_input("privileged", True)), only="vllm-container-host-isolation"
    )
    assert [v.message.split("; ")[0] for v in privileged] == [
        "node blue-0 (blue-0-router): the container runs privileged, which hands it every host device and capability"
    ]
    unpinned = mutate(grouped, "blue-0-router-image", set_input("name", "vllm/vllm-router:latest"))
    assert messages(run(unpinned, only="vllm-image-pinned"), "vllm-image-pinned")
