"""Golden tests: the shipped stacks' per-node plans are the tutorial's deployment."""

import pytest
import seed
from mocked import stack_settings

from core.config import load_config
from core.plan import plan_cluster


def shipped(stack):
    return plan_cluster(load_config(stack_settings(stack)), stack=stack)


def env(node):
    return dict(node.env)


def test_a3_single_node_is_the_tutorials_single_node_script():
    (node,) = shipped("a3").nodes
    assert node.role == "single"
    assert env(node) == seed.fill(seed.SINGLE_NODE_ENV, local_ip="192.0.2.10", nic_name="eth0")
    assert list(node.argv) == seed.behind_the_front_door(seed.fill(seed.SINGLE_NODE_SERVE), "192.0.2.10")
    assert [d.host_path for d in node.devices] == seed.DOCKER_DEVICES_A3
    assert list(node.ranks) == [0, 1, 2, 3]


@pytest.mark.parametrize("stack", ["a2", "a3"])
def test_without_the_front_door_every_command_is_the_tutorials_exactly(stack):
    settings = {**stack_settings(stack), "frontDoor": {"enabled": False}}
    plan = plan_cluster(load_config(settings), stack=stack)
    tutorial = {
        "a3": [seed.fill(seed.SINGLE_NODE_SERVE)],
        "a2": [seed.fill(seed.NODE0_SERVE, local_ip="192.0.2.11"), seed.fill(seed.NODE1_SERVE, node0_ip="192.0.2.11")],
    }[stack]
    assert [list(n.argv) for n in plan.nodes] == tutorial
    assert plan.endpoint == f"http://{plan.head.ip}:8000/v1"


def test_a3_runs_the_a3_build_of_the_pinned_image():
    assert shipped("a3").head.image == seed.IMAGE + "-a3"


def test_a2_node0_is_the_tutorials_node0_script():
    head = shipped("a2").nodes[0]
    assert head.role == "head"
    assert env(head) == seed.fill(seed.MULTI_NODE_ENV, local_ip="192.0.2.11", nic_name="eth0")
    assert list(head.argv) == seed.behind_the_front_door(
        seed.fill(seed.NODE0_SERVE, local_ip="192.0.2.11"), "192.0.2.11"
    )
    assert head.image == seed.IMAGE


def test_a2_node1_is_the_tutorials_node1_script():
    node = shipped("a2").nodes[1]
    assert node.role == "headless"
    assert env(node) == seed.fill(seed.MULTI_NODE_ENV, local_ip="192.0.2.12", nic_name="eth0")
    assert list(node.argv) == seed.behind_the_front_door(
        seed.fill(seed.NODE1_SERVE, node0_ip="192.0.2.11"), "192.0.2.11"
    )
    assert list(node.ranks) == [2, 3]


def test_a2_nodes_get_the_tutorials_docker_options():
    for node in shipped("a2").nodes:
        assert [d.host_path for d in node.devices] == seed.DOCKER_DEVICES_A2
        assert all(d.host_path == d.container_path for d in node.devices)
        driver = [m for m in node.mounts if m.container_path != "/root/.cache"]
        assert [(m.host_path, m.container_path) for m in driver] == [(p, p) for p in seed.DOCKER_MOUNTS]
        assert all(m.read_only for m in driver)
        assert node.shm_bytes == 1024**3
        assert node.container_name == "vllm-ascend"
        assert node.docker_host == f"ssh://root@{node.ip}"


def test_weights_directory_is_mounted_writable_at_root_cache():
    (node,) = shipped("a3").nodes
    weights = [m for m in node.mounts if m.container_path == "/root/.cache"]
    assert [(m.host_path, m.read_only) for m in weights] == [("/root/.cache", False)]


def test_four_a2_nodes_split_ranks_and_point_at_the_head():
    raw = stack_settings("a2")
    raw["nodes"] = [{"name": f"n{i}", "ip": f"192.0.2.{20 + i}", "nic": f"eth{i}"} for i in range(4)]
    raw["serve"] = {"dataParallelSize": 8}
    plan = plan_cluster(load_config(raw), stack="big")
    assert [n.role for n in plan.nodes] == ["head", "headless", "headless", "headless"]
    assert [list(n.ranks) for n in plan.nodes] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    for node in plan.nodes:
        argv = list(node.argv)
        assert argv[argv.index("--data-parallel-address") + 1] == "192.0.2.20"
        assert argv[argv.index("--data-parallel-size") + 1] == "8"
        assert argv[argv.index("--data-parallel-size-local") + 1] == "2"
        assert dict(node.env)["HCCL_IF_IP"] == node.ip
        assert dict(node.env)["HCCL_SOCKET_IFNAME"] == f"eth{node.index}"
    assert [list(n.argv)[list(n.argv).index("--data-parallel-start-rank") + 1] for n in plan.nodes[1:]] == [
        "2",
        "4",
        "6",
    ]
    assert "--data-parallel-start-rank" not in plan.head.argv


def test_switches_and_json_settings_render_as_vllm_expects():
    raw = stack_settings("a3")
    raw["serve"] = {
        "enablePrefixCaching": False,
        "asyncScheduling": False,
        "speculativeConfig": {"method": "mtp", "num_speculative_tokens": 1},
        "compilationConfig": None,
        "extraArgs": ["--enforce-eager"],
    }
    argv = list(plan_cluster(load_config(raw), stack="a3").head.argv)
    # vllm 0.18 turns async scheduling on by itself when the flag is left out.
    assert "--no-async-scheduling" in argv and "--async-scheduling" not in argv
    assert "--compilation-config" not in argv
    assert argv[argv.index("--speculative-config") + 1] == '{"method":"mtp","num_speculative_tokens":1}'
    assert argv[-2:] == ["--no-enable-prefix-caching", "--enforce-eager"]


def test_environment_overrides_merge_over_the_tutorials():
    raw = stack_settings("a2")
    raw["env"] = {"multiNode": {"HCCL_BUFFSIZE": 400, "OMP_PROC_BIND": None}, "extra": {"HCCL_CONNECT_TIMEOUT": 1200}}
    node_env = dict(plan_cluster(load_config(raw), stack="a2").head.env)
    assert node_env["HCCL_BUFFSIZE"] == "400"
    assert "OMP_PROC_BIND" not in node_env
    assert node_env["HCCL_CONNECT_TIMEOUT"] == "1200"
    assert node_env["HCCL_INTRA_ROCE_ENABLE"] == "0"


def test_secrets_become_secret_environment_not_flags():
    raw = stack_settings("a2") | {"apiKey": "sk-test", "hfToken": "hf-test"}
    plan = plan_cluster(load_config(raw, frozenset({"apiKey", "hfToken"})), stack="a2")
    for node in plan.nodes:
        assert dict(node.env)["VLLM_API_KEY"] == "sk-test"
        assert node.secret_env == {"VLLM_API_KEY", "HF_TOKEN"}
        assert "sk-test" not in node.command_line
        assert all("sk-test" not in value for _, value in node.labels)


def test_group_fingerprint_changes_for_any_node_and_is_shared():
    base = shipped("a2")
    raw = stack_settings("a2")
    raw["nodes"][1]["nic"] = "eth1"
    changed = plan_cluster(load_config(raw), stack="a2")
    assert base.group_fingerprint != changed.group_fingerprint
    for plan in (base, changed):
        assert {dict(n.labels)["deepseek-r1-ascend.dp-group"] for n in plan.nodes} == {plan.group_fingerprint}
    assert shipped("a2").group_fingerprint == base.group_fingerprint


def test_endpoint_is_the_front_doors_and_smoke_request_the_tutorials():
    plan = shipped("a2")
    assert plan.endpoint == "http://192.0.2.11:8080/v1"
    assert plan.smoke_request == {
        "model": "deepseek_r1",
        "prompt": "The future of AI is",
        "max_completion_tokens": 50,
        "max_tokens": 50,
        "temperature": 0,
    }


@pytest.mark.parametrize(
    "key,flag",
    [
        ("enableExpertParallel", "--enable-expert-parallel"),
        ("asyncScheduling", "--async-scheduling"),
        ("trustRemoteCode", "--trust-remote-code"),
    ],
)
def test_a_modelled_boolean_set_false_renders_its_no_form(key, flag):
    raw = stack_settings("a2")
    raw["serve"] = {key: False}
    for node in plan_cluster(load_config(raw), stack="a2").nodes:
        assert f"--no-{flag[2:]}" in node.argv and flag not in node.argv


def test_the_group_fingerprint_names_machines_not_the_way_in():
    def fingerprint(**changes):
        raw = stack_settings("a2") | changes
        return plan_cluster(load_config(raw), stack="a2").group_fingerprint

    shipped_fingerprint = fingerprint()
    # SSH user and port are connection settings: the group stays as it is.
    assert fingerprint(ssh={"user": "deploy", "port": 2222}) == shipped_fingerprint
    moved = stack_settings("a2")
    moved["nodes"][1]["dockerHost"] = "ssh://root@192.0.2.99"
    assert fingerprint(nodes=moved["nodes"]) != shipped_fingerprint
