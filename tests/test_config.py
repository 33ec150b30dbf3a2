"""Every validation rule, with the exact message a user reads."""

import copy

import pytest
from mocked import stack_settings

from core.config import ConfigError, load_config

A2 = stack_settings("a2")
A3 = stack_settings("a3")


def problems(raw, secret_keys=frozenset()):
    with pytest.raises(ConfigError) as caught:
        load_config(raw, frozenset(secret_keys))
    return caught.value.problems


def a2(**changes):
    raw = copy.deepcopy(A2)
    raw.update(copy.deepcopy(changes))
    return raw


def four_a2_nodes():
    return [{"name": f"n{i}", "ip": f"192.0.2.{20 + i}", "nic": "eth0"} for i in range(4)]


def test_shipped_stacks_are_valid():
    assert load_config(A2).hardware.npus == 8
    assert load_config(A3).hardware.npus == 16


def test_unknown_top_level_key_is_an_error_with_a_suggestion():
    assert problems(a2(nodez=[])) == [
        "nodez: unknown key; did you mean 'nodes'? known keys here: profile, nodes, image, model, serve, "
        "env, container, ssh, preflight, verify, benchmark, accuracy, weights, observability, frontDoor, groups, router, pd, "
        "supervision, "
        "apiKey, "
        "modelscopeToken, hfToken, sshPrivateKey, grafanaAdminPassword"
    ]


def test_unknown_nested_key_names_its_path():
    raw = a2()
    raw["nodes"][1]["nicName"] = "eth1"
    raw["serve"] = {"maxModelLength": 35000}
    assert problems(raw) == [
        "nodes[1].nicName: unknown key; did you mean 'nic'? known keys here: name, ip, nic, dockerHost, "
        "sshOpts, hostKey, containerName, hostRoot, renamedFrom",
        "serve.maxModelLength: unknown key; did you mean 'maxModelLen'? known keys here: host, port, "
        "dataParallelSize, tensorParallelSize, dataParallelRpcPort, quantization, seed, enableExpertParallel, "
        "asyncScheduling, maxNumSeqs, maxModelLen, maxNumBatchedTokens, trustRemoteCode, gpuMemoryUtilization, "
        "speculativeConfig, compilationConfig, enablePrefixCaching, extraArgs",
    ]


def test_snake_case_keys_are_not_silently_accepted():
    assert problems(a2(serve={"max_model_len": 35000}))[0].startswith(
        "serve.max_model_len: unknown key; did you mean 'maxModelLen'?"
    )


def test_invalid_ip_names_the_node_key():
    raw = a2()
    raw["nodes"][1]["ip"] = "10.0.0.300"
    assert problems(raw) == [
        "nodes[1].ip: '10.0.0.300' is not an IP address; use the address of the node's NIC, e.g. 192.0.2.10"
    ]


def test_missing_node_fields_and_bad_names():
    raw = a2()
    raw["nodes"][0] = {"name": "Head_0", "ip": "192.0.2.11"}
    assert problems(raw) == [
        "nodes[0].name: 'Head_0' is not a valid node name; use 1-40 lowercase letters, digits and '-', "
        "starting and ending with a letter or digit",
        "nodes[0].nic: required key is missing",
    ]


def test_nic_name_longer_than_linux_allows():
    raw = a2()
    raw["nodes"][0]["nic"] = "enp189s0f0-too-long"
    assert problems(raw)[0].startswith("nodes[0].nic: 'enp189s0f0-too-long' is not a network interface name")


def test_duplicate_names_addresses_and_container_names():
    raw = a2()
    raw["nodes"][1].update(name="a2-0", ip="192.0.2.11")
    assert problems(raw) == [
        "nodes[1].name: 'a2-0' is also nodes[0].name; node names must be unique",
        "nodes[1].ip: '192.0.2.11' is also nodes[0].ip; node addresses must be unique",
        "nodes[1].containerName: 'vllm-ascend' is also nodes[0].containerName; "
        "container names on one Docker host must be unique",
        "nodes[1].hostRoot: '/' is also nodes[0].hostRoot; NPU devices on one Docker host must be unique",
    ]


def test_nodes_sharing_a_docker_host_need_their_own_container_and_npus():
    raw = a2()
    for node in raw["nodes"]:
        node["dockerHost"] = "unix:///var/run/docker.sock"
    assert problems(raw) == [
        "nodes[1].containerName: 'vllm-ascend' is also nodes[0].containerName; "
        "container names on one Docker host must be unique",
        "nodes[1].hostRoot: '/' is also nodes[0].hostRoot; NPU devices on one Docker host must be unique",
    ]
    raw["nodes"][1].update(containerName="vllm-ascend-1", hostRoot="/srv/node1")
    load_config(raw)


def test_addresses_must_be_reachable_from_the_other_nodes():
    raw = a2()
    raw["nodes"][0]["ip"] = "0.0.0.0"
    raw["nodes"][1]["ip"] = "127.0.0.2"
    assert problems(raw) == [
        "nodes[0].ip: 0.0.0.0 is no node's address; use the address of its NIC",
        "nodes[1].ip: 127.0.0.2 is a loopback address, which other nodes cannot reach; use the address of the "
        "node's NIC (loopback only suits nodes on this machine's Docker)",
    ]


def test_one_address_family_per_group():
    raw = a2()
    raw["nodes"][1]["ip"] = "2001:db8::12"
    assert problems(raw) == [
        "nodes[1].ip: 2001:db8::12 is IPv6 but nodes[0].ip is IPv4; a DP group uses one address family"
    ]


def test_ipv6_nodes_and_ssh_settings_make_the_docker_url():
    # vllm listens on IPv6 with "::" (its default 0.0.0.0 is IPv4 only).
    raw = a2(ssh={"user": "deploy", "port": 2222}, serve={"host": "::"})
    raw["nodes"][0]["ip"], raw["nodes"][1]["ip"] = "2001:db8::11", "2001:db8::12"
    cfg = load_config(raw)
    assert [cfg.docker_url(n) for n in cfg.nodes] == [
        "ssh://deploy@[2001:db8::11]:2222",
        "ssh://deploy@[2001:db8::12]:2222",
    ]


def test_parallel_sizes_must_cover_every_npu():
    assert problems(a2(serve={"tensorParallelSize": 8})) == [
        "serve.tensorParallelSize: tensorParallelSize 8 x dataParallelSize 4 = 32 NPUs, but 2 atlas-800-a2 "
        "nodes have 16; every NPU must hold one rank, e.g. dataParallelSize 16 x tensorParallelSize 1, "
        "dataParallelSize 8 x tensorParallelSize 2, dataParallelSize 4 x tensorParallelSize 4, "
        "dataParallelSize 2 x tensorParallelSize 8"
    ]


def test_data_parallel_ranks_must_split_evenly_over_nodes():
    assert problems(a2(serve={"tensorParallelSize": 16, "dataParallelSize": 1})) == [
        "serve.dataParallelSize: 1 data-parallel ranks do not divide evenly over 2 nodes; use a multiple of 2"
    ]


def test_one_a2_node_cannot_hold_the_model():
    raw = a2(serve={"dataParallelSize": 2})
    raw["nodes"] = raw["nodes"][:1]
    assert problems(raw) == [
        "nodes: 1 atlas-800-a2 node has 512 GB of NPU memory, but vllm-ascend/DeepSeek-R1-W8A8 needs 1024 GB "
        "(model.requiredHbmGb); use at least 2 atlas-800-a2 nodes"
    ]


def test_four_a2_nodes_with_dp8_are_valid():
    cfg = load_config(a2(nodes=four_a2_nodes(), serve={"dataParallelSize": 8}))
    assert len(cfg.nodes) == 4


def test_ports_in_range_and_distinct():
    assert problems(a2(serve={"port": 70000, "dataParallelRpcPort": 0})) == [
        "serve.port: got 70000; input should be less than or equal to 65535",
        "serve.dataParallelRpcPort: got 0; input should be greater than or equal to 1",
    ]
    assert problems(a2(serve={"port": 13389})) == [
        "serve.dataParallelRpcPort: 13389 is also serve.port; the API and the data-parallel RPC need distinct ports"
    ]


@pytest.mark.parametrize(
    "image, message",
    [
        ({"tag": "latest"}, "image.tag: 'latest' moves between releases; pin a version tag such as v0.18.0"),
        (
            {"tag": ""},
            "image.tag: '' is not a Docker tag: at most 128 letters, digits, '_', '.' and '-', not starting "
            "with '.' or '-'; pin a version tag such as v0.18.0",
        ),
        (
            {"ref": "quay.io/ascend/vllm-ascend"},
            "image.ref: 'quay.io/ascend/vllm-ascend' has no tag; pin a version tag such as :v0.18.0 or a @sha256: digest",
        ),
        (
            {"ref": "localhost:5000/vllm-ascend:latest"},
            "image.ref: 'localhost:5000/vllm-ascend:latest' uses the moving tag 'latest'; "
            "pin a version tag such as :v0.18.0 or a @sha256: digest",
        ),
    ],
)
def test_image_must_be_pinned(image, message):
    assert problems(a2(image=image)) == [message]


def test_image_digest_and_registry_port_are_pinned_references():
    load_config(a2(image={"ref": "localhost:5000/vllm-ascend@sha256:" + "a" * 64, "vllmVersion": "0.18.0"}))
    load_config(a2(image={"ref": "localhost:5000/vllm-ascend:v0.18.0"}))


def test_accuracy_runs_need_long_context_and_a_tokenizer():
    assert problems(a2(accuracy={"enabled": True})) == [
        "accuracy.tokenizer: required when accuracy.enabled is true; the model's directory inside the container, "
        "e.g. /root/.cache/modelscope/hub/models/vllm-ascend/DeepSeek-R1-W8A8",
        "serve.maxModelLen: 16384 is too short for accuracy runs (accuracy.enabled is true); set it to at least 35000",
    ]
    load_config(a2(accuracy={"enabled": True, "tokenizer": "/root/.cache/r1"}, serve={"maxModelLen": 35000}))


def test_derived_environment_cannot_be_overridden():
    assert problems(a2(env={"extra": {"HCCL_IF_IP": "10.0.0.1"}, "multiNode": {"VLLM_USE_MODELSCOPE": "False"}})) == [
        "env.multiNode.VLLM_USE_MODELSCOPE: set from model.useModelscope; remove it here",
        "env.extra.HCCL_IF_IP: set from each node's ip and nic; remove it here",
    ]


def test_environment_names_must_be_valid():
    assert problems(a2(env={"extra": {"BAD-NAME": "1"}})) == [
        "env.extra: 'BAD-NAME' is not an environment variable name; use letters, digits and '_'"
    ]


def test_extra_args_cannot_repeat_modelled_flags():
    assert problems(a2(serve={"extraArgs": ["--enforce-eager", "--port=9000", "--max-model-len", "8"]})) == [
        "serve.extraArgs[1]: '--port=9000' sets --port, which is set from serve.port; set it there",
        "serve.extraArgs[2]: '--max-model-len' sets --max-model-len, which is set from serve.maxModelLen; set it there",
    ]


def test_short_aliases_and_pipeline_parallelism_are_refused():
    assert problems(a2(serve={"extraArgs": ["-tp", "8", "-dpr=1", "--pipeline-parallel-size", "2"]})) == [
        "serve.extraArgs[0]: '-tp' sets --tensor-parallel-size, which is set from serve.tensorParallelSize; "
        "set it there",
        "serve.extraArgs[2]: '-dpr=1' sets --data-parallel-start-rank, which is set from each node's position "
        "in nodes; set it there",
        "serve.extraArgs[3]: '--pipeline-parallel-size' conflicts with this deployment's layout: pipeline "
        "parallelism is not supported (tensor x data parallel covers every NPU)",
    ]


def test_shared_memory_below_the_tutorials_is_refused():
    assert problems(a2(container={"shmSize": "512m"})) == [
        "container.shmSize: 512m is below the 1g the tutorial uses; a smaller /dev/shm crashes vllm's EngineCore"
    ]
    assert load_config(a2(container={"shmSize": "16g"})).container.shm_bytes == 16 * 1024**3


def test_benchmark_runs_the_tutorials_dataset_only():
    assert problems(a2(benchmark={"datasetName": "sharegpt"})) == [
        "benchmark.datasetName: 'sharegpt' is not allowed; input should be 'random'"
    ]


def test_secrets_must_be_pulumi_secrets():
    assert problems(a2(apiKey="sk-plain")) == [
        "apiKey: stored in plain text; set it with `pulumi config set --secret apiKey <value>`"
    ]
    assert load_config(a2(apiKey="sk-1"), frozenset({"apiKey"})).api_key == "sk-1"


def test_a_bad_secret_is_never_echoed():
    assert problems(a2(sshPrivateKey={"key": "hunter2"}), {"sshPrivateKey"}) == [
        "sshPrivateKey: the value is hidden because sshPrivateKey is a secret; input should be a valid string"
    ]


def test_json_arguments_must_be_objects():
    assert problems(a2(serve={"speculativeConfig": "[1, 2]", "gpuMemoryUtilization": 0})) == [
        "serve.gpuMemoryUtilization: got 0; input should be greater than 0",
        'serve.speculativeConfig: must be a JSON object, e.g. {"method": "mtp"}',
    ]


def test_profile_must_be_known():
    assert problems(a2(profile="atlas-900")) == [
        "profile: 'atlas-900' is not allowed; input should be 'atlas-800-a3' or 'atlas-800-a2'"
    ]


def test_every_problem_is_reported_at_once():
    raw = a2(serve={"tensorParallelSize": 2, "port": 13389}, accuracy={"enabled": True, "tokenizer": "/t"})
    raw["nodes"][1]["ip"] = raw["nodes"][0]["ip"]
    assert [p.split(":")[0] for p in problems(raw)] == [
        "nodes[1].ip",
        "nodes[1].containerName",  # the same address means the same default Docker host
        "nodes[1].hostRoot",
        "serve.tensorParallelSize",
        "serve.dataParallelRpcPort",
        "serve.maxModelLen",
    ]


def test_invalid_keys_with_defaults_do_not_hide_cross_key_problems():
    raw = a2(serve={"tensorParallelSize": 8, "maxNumSeq": 8, "port": "http"})
    assert [p.split(":")[0] for p in problems(raw)] == [
        "serve.port",
        "serve.maxNumSeq",
        "serve.tensorParallelSize",
    ]


def test_a_missing_required_node_key_does_not_stop_the_cross_key_rules():
    raw = a2(serve={"tensorParallelSize": 8})
    del raw["nodes"][1]["ip"]
    assert [p.split(":")[0] for p in problems(raw)] == ["nodes[1].ip", "serve.tensorParallelSize"]


def test_without_a_node_list_the_cross_key_rules_cannot_run():
    raw = a2(serve={"tensorParallelSize": 8})
    del raw["nodes"]
    assert problems(raw) == ["nodes: required key is missing"]


def test_union_branches_do_not_leak_into_key_paths():
    assert problems(a2(serve={"speculativeConfig": [1, 2]})) == [
        "serve.speculativeConfig: got [1, 2]; input should be a valid string or a valid dictionary"
    ]


def test_error_text_lists_every_problem():
    with pytest.raises(ConfigError) as caught:
        load_config(a2(image={"tag": "latest"}, container={"shmSize": "lots"}))
    assert str(caught.value) == (
        "invalid configuration for deepseek-r1-ascend:\n"
        "  - image.tag: 'latest' moves between releases; pin a version tag such as v0.18.0\n"
        "  - container.shmSize: 'lots' is not a size; use a Docker size such as 1g or 2048m"
    )


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        (["-o", "KnownHostsCommand=/bin/echo ssh-ed25519 AAAA"], "KnownHostsCommand"),
        (["-oHostKeyAlias=a2-0"], "HostKeyAlias"),
        (["-o", "StrictHostKeyChecking no"], "StrictHostKeyChecking"),
        (["-o", "userknownhostsfile=/dev/null"], "userknownhostsfile"),
        (["-o", "SendEnv=SSH_PRIVATE_KEY"], "SendEnv"),
        (["-F", "/tmp/other_config"], "-F"),
    ],
)
def test_ssh_options_that_loosen_the_pinned_host_key_are_refused(opts, named):
    raw = a2()
    raw["nodes"][1]["sshOpts"] = opts
    with pytest.raises(ConfigError) as error:
        load_config(raw)
    assert str(error.value).splitlines()[1] == (
        f"  - nodes[1].sshOpts: {named} would loosen how ssh trusts the node (its host key is pinned with "
        "nodes[i].hostKey; these add keys it would trust, or hand it your environment); remove them, and keep "
        "sshOpts to the way in (ProxyJump, IdentityFile, ConnectTimeout, ...)"
    )


def test_ssh_options_for_the_way_in_are_accepted():
    raw = a2()
    raw["nodes"][1]["sshOpts"] = ["-o", "ProxyJump=bastion.example", "-i", "/home/ops/.ssh/site", "-oConnectTimeout=10"]
    assert load_config(raw).nodes[1].ssh_opts[1] == "ProxyJump=bastion.example"
