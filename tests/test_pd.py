"""Prefill-decode disaggregation: the a3-pd stack (vllm-ascend's 2P1D recipe) planned, validated,
declared and judged by the policy pack."""

from __future__ import annotations

import copy
import json
import shlex

import pytest
from mocked import run_program, stack_settings

from core.config import ConfigError, load_config
from core.deployment import plan_deployment

EXTRA = {"prefill": {"dp_size": 2, "tp_size": 8}, "decode": {"dp_size": 32, "tp_size": 1}}


@pytest.fixture
def pd():
    return copy.deepcopy(stack_settings("a3-pd"))


def planned(raw, secret_keys=frozenset()):
    return plan_deployment(load_config(raw, secret_keys=secret_keys), stack="a3-pd")


def problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load_config(raw)
    return error.value.problems


def flag(node, name: str) -> str:
    return node.argv[node.argv.index(name) + 1]


def test_every_node_gets_its_roles_flags_and_one_kv_transfer_config_per_instance(pd):
    groups = planned(pd).groups
    nodes = {n.name: n for g in groups for n in g.nodes}
    expected = {
        "prefill-0": ("kv_producer", "36000", "prefill-a"),
        "prefill-1": ("kv_producer", "36016", "prefill-b"),
        "decode-0": ("kv_consumer", "36032", "decode"),
        "decode-1": ("kv_consumer", "36032", "decode"),
    }
    for name, (role, port, engine) in expected.items():
        config = json.loads(flag(nodes[name], "--kv-transfer-config"))
        assert config == {
            "kv_connector": "MooncakeConnectorV1",
            "kv_role": role,
            "kv_port": port,
            "engine_id": engine,
            "kv_connector_extra_config": EXTRA,
        }
    prefill, decode = nodes["prefill-0"], nodes["decode-0"]
    # The recipe's per-role flags: eager prefill, decode in graph mode, per-role batches, the
    # recompute scheduler on both, MTP with one token.
    assert "--enforce-eager" in prefill.argv and "--enforce-eager" not in decode.argv
    assert (flag(prefill, "--tensor-parallel-size"), flag(prefill, "--data-parallel-size")) == ("8", "2")
    assert (flag(decode, "--tensor-parallel-size"), flag(decode, "--data-parallel-size")) == ("1", "32")
    assert (flag(prefill, "--max-num-seqs"), flag(prefill, "--max-num-batched-tokens")) == ("8", "16384")
    assert (flag(decode, "--max-num-seqs"), flag(decode, "--max-num-batched-tokens")) == ("28", "256")
    assert "--no-async-scheduling" in prefill.argv and "--async-scheduling" in decode.argv
    assert "--compilation-config" not in prefill.argv
    assert json.loads(flag(decode, "--compilation-config"))["cudagraph_mode"] == "FULL_DECODE_ONLY"
    assert all(size % 2 == 0 for size in json.loads(flag(decode, "--compilation-config"))["cudagraph_capture_sizes"])
    for node in (prefill, decode):
        assert json.loads(flag(node, "--additional-config"))["recompute_scheduler_enable"] is True
        assert json.loads(flag(node, "--speculative-config")) == {"num_speculative_tokens": 1, "method": "mtp"}
        assert "--no-enable-prefix-caching" in node.argv
    headless = nodes["decode-1"]
    assert (headless.role, flag(headless, "--data-parallel-start-rank")) == ("headless", "16")
    assert flag(headless, "--data-parallel-address") == "192.0.2.23"


def test_the_recipes_environment_replaces_the_tutorials(pd):
    nodes = {n.name: dict(n.env) for g in planned(pd).groups for n in g.nodes}
    for env in nodes.values():
        # vllm-ascend refuses balance scheduling beside a KV producer or consumer.
        assert "VLLM_ASCEND_BALANCE_SCHEDULING" not in env
        assert env["VLLM_HOST_IP"] == env["HCCL_IF_IP"]
        assert (env["OMP_NUM_THREADS"], env["TASK_QUEUE_ENABLE"], env["ASCEND_BUFFER_POOL"]) == ("10", "1", "4:8")
    assert (nodes["prefill-0"]["HCCL_BUFFSIZE"], nodes["decode-0"]["HCCL_BUFFSIZE"]) == ("256", "600")
    assert nodes["prefill-0"]["VLLM_ASCEND_ENABLE_FLASHCOMM1"] == "1"
    assert "VLLM_ASCEND_ENABLE_FLASHCOMM1" not in nodes["decode-0"]


def test_the_supervisor_gives_vllm_the_images_interactive_environment_on_pd_nodes_only(pd):
    def settings(plan):
        return json.loads(plan.head.uploads[-1].content)

    assert all(settings(g)["interactive_env"] for g in planned(pd).groups)
    assert settings(planned(stack_settings("a3")).cluster)["interactive_env"] is False


def test_the_proxy_of_the_image_fronts_the_instances_behind_the_front_door(pd):
    deployment = planned({**pd, "apiKey": "pd-key"}, secret_keys=frozenset({"apiKey"}))
    proxy, door = deployment.router.container, deployment.front_door
    assert (proxy.role, proxy.node, proxy.image) == ("pd-proxy", "prefill-0", deployment.cluster.head.image)
    assert proxy.argv == (
        "python3",
        "/vllm-workspace/vllm-ascend/examples/disaggregated_prefill_v1/load_balance_proxy_server_example.py",
        "--host", "192.0.2.21", "--port", "30000",
        "--prefiller-hosts", "192.0.2.21", "192.0.2.22", "--prefiller-ports", "8000", "8000",
        "--decoder-hosts", "192.0.2.23", "--decoder-ports", "8000",
    )  # fmt: skip
    # It hands the backends the key as OPENAI_API_KEY, a secret like every key.
    assert proxy.env == (("OPENAI_API_KEY", "pd-key"),) and proxy.secret_env == {"OPENAI_API_KEY"}
    assert not deployment.router.rolls_out
    (config,) = door.uploads
    # Its /instances/add and /instances/remove stay out of clients' reach: only /v1 and /health pass.
    assert "unless { path_beg /v1/ } || { path /health }" in config.content
    assert "    option httpchk GET /healthcheck\n" in config.content
    assert "    server backend 192.0.2.21:30000 check" in config.content
    assert deployment.endpoint == "http://192.0.2.21:8080/v1"


def test_vllm_routers_pd_mode_is_an_explicit_choice(pd):
    pd["pd"] = {"proxy": "vllm-router"}
    argv = planned(pd).router.container.argv
    assert argv[:2] == ("vllm-router", "--vllm-pd-disaggregation")
    urls = [argv[i + 1] for i, a in enumerate(argv) if a in ("--prefill", "--decode")]
    roles = [a for a in argv if a in ("--prefill", "--decode")]
    assert list(zip(roles, urls, strict=True)) == [
        ("--prefill", "http://192.0.2.21:8000"),
        ("--prefill", "http://192.0.2.22:8000"),
        ("--decode", "http://192.0.2.23:8000"),
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda raw: raw["groups"][1].pop("role"),
            "groups[1].role: group prefill-b has none, but others have; in a prefill-decode deployment every group "
            "is prefill or decode",
        ),
        (
            lambda raw: raw["groups"][2].update(role="prefill"),
            "groups: no decode group; a prefill-decode deployment needs both",
        ),
        (
            lambda raw: raw.update(
                pd={
                    "prefill": {"tensorParallelSize": 2, "dataParallelSize": 8},
                    "decode": {"tensorParallelSize": 4, "dataParallelSize": 8},
                }
            ),
            "pd.prefill.tensorParallelSize: 2 must be at least pd.decode.tensorParallelSize (4) and a multiple of it: "
            "a prefiller's KV blocks are split among the decoder's tensor-parallel ranks",
        ),
        (
            lambda raw: raw.update(pd={"kvPortBase": 30000}),
            "pd.kvPortBase: 30000 is inside Mooncake's random port range 20000-35999 on atlas-800-a3, where its "
            "transfers collide with the KV ports now and then; use 36000 or above",
        ),
        (
            lambda raw: raw.update(pd={"kvPortBase": 65500}),
            "pd.kvPortBase: the KV ports would run to 65563, past 65535; use at most 65472",
        ),
        (
            lambda raw: raw.update(pd={"kvPortBase": 36000}, frontDoor={"port": 36020}),
            "pd.kvPortBase: the KV ports of group prefill-b (36016-36031) include frontDoor.port 36020; move one of them",
        ),
        (
            lambda raw: raw.update(serve={"extraArgs": ["--kv_transfer_config.kv_port=40000"]}),
            "serve.extraArgs: --kv-transfer-config is derived from each group's role (pd.* and groups[].role); "
            "remove it",
        ),
        (
            lambda raw: raw.update(serve={"extraArgs": ["--enforce-eag"]}),
            "serve.extraArgs: --enforce-eager is derived from each group's role (pd.* and groups[].role); remove it",
        ),
        (
            lambda raw: raw.update(frontDoor={"enabled": False}),
            "frontDoor.enabled: the router's admin routes (/add_worker, /remove_worker) answer anyone on its port; "
            "several groups need the front door, which passes only /v1 and /health on to it",
        ),
        (
            lambda raw: raw.update(supervision={"enabled": False}),
            "supervision.enabled: prefill and decode instances need what the vllm-ascend image sets only in an "
            "interactive shell (jemalloc, /usr/local/lib), which the supervisor gives vllm; keep it on",
        ),
        (
            lambda raw: raw.update(pd={"prefill": {"dataParallelSize": 4}}),
            "groups[0] (prefill-a): serve.tensorParallelSize: tensorParallelSize 8 x dataParallelSize 4 = 32 NPUs, "
            "but 1 atlas-800-a3 node has 16",
        ),
    ],
)
def test_a_pd_layout_that_cannot_work_is_refused_with_its_key(pd, change, problem):
    change(pd)
    found = problems(pd)
    assert any(p.startswith(problem) for p in found), found


def test_kv_port_runs_never_overlap_on_any_node(pd):
    groups = planned(pd).groups
    runs = sorted((g.kv.kv_port, g.kv.last_port) for g in groups)
    assert all(a[1] < b[0] for a, b in zip(runs, runs[1:], strict=False))
    assert runs[0][0] == 36000


def test_the_program_declares_the_proxy_the_instances_and_their_pd_checks(pd):
    deployment = run_program(pd, stack="a3-pd")
    assert deployment.error is None, deployment.error
    proxy = deployment.named("prefill-0-pd-proxy")
    assert proxy.inputs["command"][0] == "python3" and not proxy.inputs.get("privileged")
    assert deployment.named("prefill-0-front-door").inputs["uploads"][0]["file"] == "/usr/local/etc/haproxy/haproxy.cfg"
    assert not [r for r in deployment.resources if r.name.endswith("-router-membership")]
    for node in ("prefill-0", "prefill-1", "decode-0", "decode-1"):
        checks = {r.name for r in deployment.resources if r.name.startswith(f"{node}-check-")}
        assert {f"{node}-check-kv-ports", f"{node}-check-mooncake"} <= checks
    groups = deployment.outputs["groups"]
    assert {g: groups[g]["role"] for g in groups} == {
        "prefill-a": "prefill",
        "prefill-b": "prefill",
        "decode": "decode",
    }
    assert deployment.outputs["endpoint"] == "http://192.0.2.21:8080/v1"


def test_the_checks_of_a_node_that_is_no_pd_instance_stay_as_they_were():
    deployment = run_program(stack_settings("a3"), stack="a3")
    assert not [r for r in deployment.resources if r.name.endswith(("-check-kv-ports", "-check-mooncake"))]


def test_the_policy_pack_passes_the_recipe_and_judges_each_instance_apart():
    from policy_harness import graph, run

    assert run(graph("a3-pd")) == []


def test_prometheus_labels_each_instance_by_role_and_alerts_on_kv_transfer_failures(pd):
    raw = {**pd, "observability": {"enabled": True, "grafana": {"enabled": False}}}
    obs = planned(raw).observability
    roles = {dict(t.labels)["node"]: dict(t.labels).get("pd_role") for t in obs.targets if t.job == "vllm"}
    assert roles == {"prefill-0": "prefill", "prefill-1": "prefill", "decode-0": "decode"}
    rules = next(u.content for u in obs.prometheus.uploads if u.path.endswith("rules.yml"))
    assert "KvTransferFailed" in rules and "GroupOutOfRouter" not in rules
    assert not [t for t in obs.targets if t.job == "router"]  # the proxy exports no metrics


def test_the_benchmark_runs_once_through_the_front_door_not_per_instance(pd):
    deployment = run_program({**pd, "benchmark": {"enabled": True}}, stack="a3-pd")
    assert deployment.error is None, deployment.error
    benches = [r for r in deployment.resources if r.name.endswith("-benchmark")]
    assert [b.name for b in benches] == ["deepseek-r1-benchmark"]
    spec = json.loads(shlex.split(benches[0].inputs["create"])[4])
    assert (spec["node"], spec["container"], spec["url"]) == ("prefill-0", "vllm-ascend", "http://127.0.0.1:8080")
    assert deployment.named("deepseek-r1-front-door-smoke-test").urn in benches[0].dependencies
    assert deployment.outputs["verification"]["benchmark"]["completed"] > 0


def test_each_instance_is_supervised_as_its_own_group(pd):
    """A prefill crash restarts that prefill instance only: no supervisor has a peer in another."""
    groups = planned(pd).groups
    peers = {n.name: set(json.loads(n.uploads[-1].content)["peers"]) for g in groups for n in g.nodes}
    assert peers == {"prefill-0": set(), "prefill-1": set(), "decode-0": {"decode-1"}, "decode-1": {"decode-0"}}
    assert len({g.group_fingerprint for g in groups}) == 3
