"""Preflight checks, readiness, smoke test, benchmark and accuracy as the mocked program declares them."""

import copy

import pytest
from fakehosts import hccn_output
from hoststubs import fixture
from mocked import run_program, stack_settings

from checks.common import HostCheckFailed
from checks.servicechecks import ServiceCheckFailed

REMOTE = "command:remote:Command"
LOCAL = "command:local:Command"
HOST_CHECKS = ["npu-health", "dev-davinci", "driver-files", "docker", "npu-free", "weights-disk", "nic-ip"]


@pytest.fixture(scope="module")
def a2():
    return run_program(stack_settings("a2"), stack="a2")


def settings(stack="a2", **changes):
    raw = copy.deepcopy(stack_settings(stack))
    raw.update(changes)
    return raw


def names(deployment, type_=REMOTE):
    return sorted(r.name for r in deployment.of_type(type_))


def env_of(container):
    return dict(item.split("=", 1) for item in container.inputs["envs"])


def test_every_node_is_checked_and_the_npu_network_across_nodes(a2):
    expected = [f"{n}-check-{c}" for n in ("a2-0", "a2-1") for c in HOST_CHECKS + ["npu-network", "npu-ping"]]
    assert names(a2) == sorted(expected + ["deepseek-r1-readiness", "deepseek-r1-smoke-test"])


def test_a_single_node_has_no_cross_node_checks():
    a3 = run_program(stack_settings("a3"), stack="a3")
    assert names(a3) == sorted(
        [f"a3-0-check-{c}" for c in HOST_CHECKS] + ["deepseek-r1-readiness", "deepseek-r1-smoke-test"]
    )


def test_checks_keep_their_resources_from_before_the_rename(a2):
    # Resources were once named after the tool; the aliases keep a saved stack's checks as they are.
    former = {
        "npu-health": "npu-smi",
        "dev-davinci": "devices",
        "driver-files": "driver",
        "npu-free": "npu-holders",
        "weights-disk": "disk",
        "nic-ip": "nic",
        "npu-network": "hccn",
    }
    for node in ("a2-0", "a2-1"):
        for check, old in former.items():
            assert a2.named(f"{node}-check-{check}").alias_names == [f"{node}-check-{old}"]
        assert a2.named(f"{node}-check-docker").alias_names == []


def test_checks_run_on_their_node_over_ssh(a2):
    check = a2.named("a2-1-check-npu-health")
    connection = check.inputs["connection"]
    assert (connection["host"], connection["user"], connection["port"]) == ("192.0.2.12", "root", 22)
    assert check.inputs["create"] == "npu-smi info 2>&1 || true"
    assert check.inputs["triggers"] == [a2.named("a2-1-vllm").replacement_trigger]


def test_host_keys_are_pinned_and_private_keys_secret():
    raw = settings(sshPrivateKey="-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    raw["nodes"][1]["hostKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfNode1"
    deployment = run_program(raw, stack="a2", secret_keys=("sshPrivateKey",))
    check = deployment.named("a2-1-check-docker")
    assert check.inputs["connection"]["hostKey"] == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfNode1"
    assert "connection" in check.secret_inputs
    assert "hostKey" not in deployment.named("a2-0-check-docker").inputs["connection"]


def test_containers_wait_for_their_checks_and_the_cross_node_checks(a2):
    for node in ("a2-0", "a2-1"):
        deps = set(a2.named(f"{node}-vllm").dependencies)
        assert {a2.named(f"{node}-check-{c}").urn for c in HOST_CHECKS + ["npu-network"]} <= deps
        assert {a2.named(f"{peer}-check-npu-ping").urn for peer in ("a2-0", "a2-1")} <= deps


def test_each_npu_pings_the_same_npu_on_the_other_node(a2):
    script = a2.named("a2-0-check-npu-ping").inputs["create"]
    assert [line for line in script.split("; ") if line.startswith("echo '=== ping")] == [
        f"echo '=== ping {i} a2-1 {i} 10.20.1.{11 + i}'" for i in range(8)
    ]


def test_every_npu_pair_is_pinged_on_request():
    deployment = run_program(settings(preflight={"pingPairs": "all"}), stack="a2")
    script = deployment.named("a2-1-check-npu-ping").inputs["create"]
    assert script.count("-ping -g address") == 64


def failure(host_outputs, stack="a2", **changes):
    deployment = run_program(settings(stack, **changes), stack=stack, host_outputs=host_outputs)
    assert deployment.of_type("docker:index/container:Container") == []
    return deployment.error


def test_a_down_npu_link_stops_the_update_before_any_container():
    error = failure({"a2-1-check-npu-network": fixture("hccn/a2_link_down.txt")})
    assert isinstance(error, HostCheckFailed)
    assert str(error).startswith("1 host check failed:\n  - node a2-1: check npu-network: expected ")


def test_a_tls_mismatch_names_both_nodes():
    error = failure({"a2-1-check-npu-network": hccn_output(1, 8, tls="1")})
    assert str(error) == (
        "1 host check failed:\n"
        "  - node a2-1: check npu-tls: expected tls switch 0 as on node a2-0, saw NPU 0-7 switch 1 "
        "(node a2-0 has switch 0)"
    )


def test_a_lost_ping_names_the_pair():
    error = failure(
        {
            "a2-0-check-npu-ping": "=== ping 3 a2-1 3 10.20.1.14\n3 packets transmitted, 0 received, 100.00% packet loss\n=== end\n"
        }
    )
    assert "node a2-0: check npu-ping" in str(error) and "NPU 3 -> a2-1 NPU 3 10.20.1.14" in str(error)


def test_every_failed_check_of_a_node_is_reported_at_once():
    error = failure(
        {
            "a3-0-check-npu-health": fixture("npu_smi/a3_busy_warning.txt"),
            "a3-0-check-weights-disk": fixture("disk/missing.txt"),
            "a3-0-check-nic-ip": "2: eth9    inet 192.0.2.99/24 scope global eth9\\ valid_lft forever\n",
            "a3-0-check-npu-free": (
                "=== container /vllm-ascend stack=a3 /dev/davinci0 /dev/davinci1\n"  # this stack's own: fine
                "=== container /old-vllm stack= /dev/davinci0 /dev/davinci1\n"
            ),
        },
        stack="a3",
    )
    checks = [line.split(": check ")[1].split(":")[0] for line in str(error).splitlines()[1:]]
    assert checks == ["npu-health", "npu-free", "weights-disk", "nic-ip"]  # npu-idle: our own container
    assert "saw container old-vllm holds NPU 0-1" in str(error)


def test_processes_on_the_npus_without_our_container_are_foreign():
    error = failure({"a2-0-check-npu-health": fixture("npu_smi/a2_busy.txt")})
    assert str(error).startswith(
        "1 host check failed:\n  - node a2-0: check npu-idle: expected no processes on any NPU, saw 3 processes"
    )


def test_nic_auto_uses_the_discovered_interface():
    raw = settings()
    raw["nodes"][1]["nic"] = "auto"
    deployment = run_program(raw, stack="a2")
    env = env_of(deployment.named("a2-1-vllm"))
    assert (env["GLOO_SOCKET_IFNAME"], env["TP_SOCKET_IFNAME"], env["HCCL_SOCKET_IFNAME"]) == ("enp1s0",) * 3
    assert env["HCCL_IF_IP"] == "192.0.2.12"
    assert deployment.outputs["nodes"]["a2-1"]["nic"] == "enp1s0"


def test_nic_auto_fails_when_no_interface_holds_the_ip():
    raw = settings()
    raw["nodes"][0]["nic"] = "auto"
    deployment = run_program(
        raw, stack="a2", host_outputs={"a2-0-check-nic-ip": "1: lo    inet 127.0.0.1/8 scope host lo\n"}
    )
    assert "node a2-0: check nic-ip: expected one interface holding 192.0.2.11" in str(deployment.error)


def test_readiness_waits_for_every_container_and_smoke_test_for_readiness(a2):
    readiness, smoke = a2.named("deepseek-r1-readiness"), a2.named("deepseek-r1-smoke-test")
    assert {a2.named("a2-0-vllm").urn, a2.named("a2-1-vllm").urn} <= set(readiness.dependencies)
    assert readiness.inputs["connection"]["host"] == "192.0.2.11"
    assert "http://127.0.0.1:8000/health" in readiness.inputs["create"]
    assert '"id": *"deepseek_r1"' in readiness.inputs["create"]
    assert readiness.urn in smoke.dependencies
    assert readiness.inputs["triggers"] == [["a2-0-vllm-id", "a2-1-vllm-id"]]


def test_verification_outputs(a2):
    assert a2.outputs["verification"] == {
        "readyAfterSeconds": 412,
        "smokeTest": {"text": " bright, and it is already here.", "latencyMs": 1532.0, "completionTokens": 50},
    }


def test_benchmark_and_accuracy_run_only_when_enabled(a2):
    assert not any(r.name.endswith(("-benchmark", "-accuracy")) for r in a2.resources)
    deployment = run_program(
        settings(
            benchmark={"enabled": True},
            accuracy={"enabled": True, "tokenizer": "/root/.cache/r1"},
            serve={"maxModelLen": 35000},
        ),
        stack="a2",
    )
    smoke, bench, accuracy = (deployment.named(f"deepseek-r1-{s}") for s in ("smoke-test", "benchmark", "accuracy"))
    assert smoke.urn in bench.dependencies and bench.urn in accuracy.dependencies
    assert (
        "docker exec -e OPENAI_API_KEY vllm-ascend vllm bench serve --backend vllm --base-url http://127.0.0.1:8000 "
        "--model vllm-ascend/DeepSeek-R1-W8A8 --served-model-name deepseek_r1 --dataset-name random "
        "--random-input-len 200 --num-prompts 200 --request-rate 1 --save-result"
    ) in bench.inputs["create"]
    assert deployment.outputs["verification"]["benchmark"]["output_throughput"] == 125.4
    assert deployment.outputs["verification"]["benchmark"]["resultFile"] == (
        "/root/.cache/benchmarks/a2-random-200p-1qps.json"
    )
    assert deployment.outputs["verification"]["accuracy"] == {
        "gsm8k": {"flexible-extract": 0.9553, "strict-match": 0.9545}
    }
    assert "--model local-completions" in accuracy.inputs["create"]


def test_benchmark_reruns_when_its_settings_change():
    base = run_program(settings(benchmark={"enabled": True}), stack="a2").named("deepseek-r1-benchmark")
    changed = run_program(settings(benchmark={"enabled": True, "numPrompts": 50}), stack="a2").named(
        "deepseek-r1-benchmark"
    )
    assert base.inputs["triggers"] != changed.inputs["triggers"]
    assert "--num-prompts 50" in changed.inputs["create"]


def test_a_failed_smoke_test_fails_the_update():
    deployment = run_program(
        settings(), stack="a2", host_outputs={"deepseek-r1-smoke-test": '{"error": "model not found"}\n404 0.01\n'}
    )
    assert isinstance(deployment.error, ServiceCheckFailed)
    assert str(deployment.error) == 'smoke test: /v1/completions answered HTTP 404: {"error": "model not found"}'


def test_api_key_reaches_verification_as_a_secret_environment():
    deployment = run_program(settings(apiKey="sk-verify"), stack="a2", secret_keys=("apiKey",))
    for step in ("readiness", "smoke-test"):
        command = deployment.named(f"deepseek-r1-{step}")
        # Over SSH, environment variables only arrive where sshd accepts them: stdin always does.
        assert command.inputs["stdin"] == "sk-verify\n"
        assert "stdin" in command.secret_inputs
        assert command.inputs["create"].startswith("IFS= read -r VLLM_API_KEY || true; export VLLM_API_KEY; ")
        assert "sk-verify" not in command.inputs["create"]
    assert "sk-verify" not in repr(deployment.outputs)


def test_preflight_can_be_turned_off():
    deployment = run_program(settings(preflight={"enabled": False}), stack="a2")
    assert names(deployment) == ["deepseek-r1-readiness", "deepseek-r1-smoke-test"]
    labels = {item["label"] for item in deployment.named("a2-0-vllm").inputs["labels"]}
    assert "deepseek-r1-ascend.driver" not in labels


def test_weights_are_staged_once_per_node_before_its_container():
    deployment = run_program(
        settings(weights={"stage": True}, modelscopeToken="ms-1"), stack="a2", secret_keys=("modelscopeToken",)
    )
    for node in ("a2-0", "a2-1"):
        stage = deployment.named(f"{node}-stage-weights")
        assert stage.inputs["create"].startswith(
            "IFS= read -r MODELSCOPE_API_TOKEN || true; export MODELSCOPE_API_TOKEN; "
            "docker run --rm -e MODELSCOPE_API_TOKEN -e HF_TOKEN -v /root/.cache:/root/.cache"
        )
        assert "modelscope download --model vllm-ascend/DeepSeek-R1-W8A8" in stage.inputs["create"]
        assert (stage.inputs["stdin"], "stdin" in stage.secret_inputs) == ("ms-1\n", True)
        assert stage.urn in deployment.named(f"{node}-vllm").dependencies
        # Only once every node's checks have passed, whatever their outcome would cost otherwise.
        assert deployment.named("a2-1-check-weights-disk").urn in stage.dependencies
    # One node after the other: on a shared weights directory the second finds the first's marker.
    assert deployment.named("a2-0-stage-weights").urn in deployment.named("a2-1-stage-weights").dependencies


def test_a_local_engine_runs_its_commands_locally():
    raw = settings(preflight={"enabled": False})
    for i, node in enumerate(raw["nodes"]):
        node.update(dockerHost="unix:///var/run/docker.sock", containerName=f"vllm-{i}", hostRoot=f"/srv/sim-{i}")
    deployment = run_program(raw, stack="a2")
    assert names(deployment, LOCAL) == ["deepseek-r1-readiness", "deepseek-r1-smoke-test"]
    assert names(deployment, REMOTE) == []
