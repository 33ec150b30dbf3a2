"""Preflight checks, readiness, smoke test, benchmark and accuracy as the mocked program declares them."""

import copy
import json
import os
import shlex
import subprocess

import pytest
from fakehosts import hccn_output
from hoststubs import fixture
from mocked import run_program, stack_settings

from checks import steps
from checks.steps import StepFailed

LOCAL = "command:local:Command"
HOST_CHECKS = [
    "npu-health",
    "npu-idle",
    "dev-davinci",
    "driver-files",
    "docker",
    "npu-free",
    "weights-disk",
    "nic-ip",
    "npu-board",
    "image-host",
]
# Every check of a node of a group; the gate every container and staging waits for.
CHECKS = HOST_CHECKS + ["npu-network", "npu-tls", "npu-ping"]
GATE = "deepseek-r1-checks-passed"
# Where every node's NPU addresses meet, for every node's pings.
NPU_IPS = "deepseek-r1-npu-ips"
RETRY = "; fix the node and run `pulumi up` again (a failed check is not saved, so it runs again)"


@pytest.fixture(scope="module")
def a2():
    return run_program(stack_settings("a2"), stack="a2")


def settings(stack="a2", **changes):
    raw = copy.deepcopy(stack_settings(stack))
    raw.update(changes)
    return raw


def names(deployment, type_=LOCAL):
    return sorted(r.name for r in deployment.of_type(type_))


def env_of(container):
    return dict(item.split("=", 1) for item in container.inputs["envs"])


def test_every_node_is_checked_and_the_npu_network_across_nodes(a2):
    expected = [f"{n}-check-{c}" for n in ("a2-0", "a2-1") for c in CHECKS]
    verification = ["a2-0-group-view", "a2-1-group-view", "deepseek-r1-readiness", "deepseek-r1-smoke-test"]
    assert names(a2) == sorted(expected + [NPU_IPS, GATE, *verification])


def test_a_single_node_has_no_cross_node_checks():
    a3 = run_program(stack_settings("a3"), stack="a3")
    assert names(a3) == sorted(
        [f"a3-0-check-{c}" for c in HOST_CHECKS]
        + [GATE, "a3-0-group-view", "deepseek-r1-readiness", "deepseek-r1-smoke-test"]
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


def spec_of(command):
    argv = shlex.split(command.inputs["create"])
    assert argv[:3] == ["$DEPLOY_PYTHON", "-m", "checks"]
    return argv[3], json.loads(argv[4])


def node_script(command):
    """What the step runs on its node."""
    return steps.node_script(*spec_of(command))


def test_checks_run_on_their_node_over_ssh(a2):
    check = a2.named("a2-1-check-npu-health")
    assert spec_of(check) == ("npu-health", {"node": "a2-1", "nodes": ["a2-1"], "npus": 8})
    connection = json.loads(check.inputs["environment"]["NODE_SSH"])["a2-1"]
    assert (connection["host"], connection["user"], connection["port"]) == ("192.0.2.12", "root", 22)
    # What it runs and the group it guards re-run it; the connection only updates (replays) it.
    assert check.inputs["triggers"] == [check.inputs["create"], a2.named("a2-1-vllm").replacement_trigger]
    assert check.inputs["update"] == 'printf "%s" "$PULUMI_COMMAND_STDOUT"'
    assert "a2-1" not in check.inputs["create"].replace('"node": "a2-1", "nodes": ["a2-1"]', "")


def test_host_keys_are_pinned_and_private_keys_secret():
    raw = settings(sshPrivateKey="-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    raw["nodes"][1]["hostKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfNode1"
    deployment = run_program(raw, stack="a2", secret_keys=("sshPrivateKey",))
    check = deployment.named("a2-1-check-docker")
    environment = check.inputs["environment"]
    assert (
        json.loads(environment["NODE_SSH"])["a2-1"]["hostKey"] == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfNode1"
    )
    assert environment["SSH_PRIVATE_KEY"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert "environment" in check.secret_inputs
    assert (
        json.loads(deployment.named("a2-0-check-docker").inputs["environment"]["NODE_SSH"])["a2-0"]["hostKey"] is None
    )


def test_containers_wait_for_every_check_of_every_node_through_the_gate(a2):
    checks = {a2.named(f"{n}-check-{c}").urn for n in ("a2-0", "a2-1") for c in CHECKS}
    gate = a2.named(GATE)
    assert set(gate.dependencies) == checks
    for node in ("a2-0", "a2-1"):
        assert gate.urn in a2.named(f"{node}-vllm").dependencies


def test_the_gate_runs_on_no_node_and_reports_how_many_checks_passed(a2):
    gate = a2.named(GATE)
    assert spec_of(gate) == ("checks-passed", {"checks": 26, "nodes": []})
    # Run for real as pulumi-command runs it: nothing reaches a node, the count is its report.
    done = subprocess.run(
        ["/bin/sh", "-c", gate.inputs["create"]],
        capture_output=True,
        text=True,
        env={**os.environ, **gate.inputs["environment"]},
        cwd=gate.inputs["dir"],
        check=True,
    )
    assert json.loads(done.stdout) == {"checksPassed": 26}
    assert json.loads(gate.inputs["environment"]["NODE_SSH"]) == {}
    # Like the checks, it passes again only when they do: when the group is about to be replaced.
    assert gate.inputs["triggers"] == [gate.inputs["create"], a2.named("a2-0-vllm").replacement_trigger]
    assert gate.inputs["update"] == 'printf "%s" "$PULUMI_COMMAND_STDOUT"'


def test_the_gate_stays_secret_when_a_setting_it_follows_is():
    deployment = run_program(settings(serve={"maxNumSeqs": 32}), stack="a2", secret_keys=("serve",))
    assert {"create", "triggers"} <= deployment.named(GATE).secret_inputs


def test_each_npu_pings_the_same_npu_on_the_other_node(a2):
    _, spec = spec_of(a2.named("a2-0-check-npu-ping"))
    assert spec["targets"] == [[i, "a2-1", i, f"10.20.1.{11 + i}"] for i in range(8)]


def test_pings_read_every_nodes_npu_addresses_from_one_step_on_no_node(a2):
    npu_ips = a2.named(NPU_IPS)
    assert set(npu_ips.dependencies) == {a2.named(f"{n}-check-npu-network").urn for n in ("a2-0", "a2-1")}
    _, spec = spec_of(npu_ips)
    assert spec == {
        "npuIps": {f"a2-{n}": {str(i): f"10.20.{n}.{11 + i}" for i in range(8)} for n in (0, 1)},
        "nodes": [],
    }
    for node in ("a2-0", "a2-1"):
        # One dependency each, not one per peer: the graph grows with the nodes, not their square.
        assert a2.named(f"{node}-check-npu-ping").dependencies == [npu_ips.urn]


def test_every_npu_pair_is_pinged_on_request():
    deployment = run_program(settings(preflight={"pingPairs": "all"}), stack="a2")
    _, spec = spec_of(deployment.named("a2-1-check-npu-ping"))
    assert len(spec["targets"]) == 64


def test_tls_is_queried_afresh_on_the_node_and_the_head(a2):
    assert spec_of(a2.named("a2-1-check-npu-tls"))[1]["nodes"] == ["a2-0", "a2-1"]
    assert spec_of(a2.named("a2-0-check-npu-tls"))[1]["nodes"] == ["a2-0"]


def failure(host_outputs, stack="a2", **changes):
    """The error of the first failing step: under the engine it fails its own resource's create."""
    deployment = run_program(settings(stack, **changes), stack=stack, host_outputs=host_outputs)
    assert isinstance(deployment.error, StepFailed)
    return deployment.error


def test_a_down_npu_link_stops_the_update_before_any_container():
    error = failure({"a2-1-check-npu-network": fixture("hccn/a2_link_down.txt")})
    assert str(error).startswith("node a2-1: check npu-network: expected ")
    assert str(error).endswith(RETRY)


def test_a_tls_mismatch_names_both_nodes():
    error = failure({"a2-1-check-npu-tls": hccn_output(1, 8, tls="1")})
    assert str(error) == (
        "node a2-1: check npu-tls: expected tls switch 0 as on node a2-0, saw NPU 0-7 switch 1 "
        "(node a2-0 has switch 0)" + RETRY
    )


def test_a_lost_ping_names_the_pair():
    error = failure(
        {
            "a2-0-check-npu-ping": "=== ping 3 a2-1 3 10.20.1.14\n3 packets transmitted, 0 received, 100.00% packet loss\n=== end\n"
        }
    )
    assert "node a2-0: check npu-ping" in str(error) and "NPU 3 -> a2-1 NPU 3 10.20.1.14" in str(error)


def test_every_failed_check_of_a_node_is_reported_at_once():
    ours = "=== container /vllm-ascend stack=a3 /dev/davinci0 /dev/davinci1\n"  # this stack's own: fine
    deployment = run_program(
        settings("a3"),
        stack="a3",
        host_outputs={
            "a3-0-check-npu-health": fixture("npu_smi/a3_busy_warning.txt"),
            "a3-0-check-npu-idle": fixture("npu_smi/a3_busy_warning.txt") + "=== npu-free\n" + ours,
            "a3-0-check-weights-disk": fixture("disk/missing.txt"),
            "a3-0-check-nic-ip": "2: eth9    inet 192.0.2.99/24 scope global eth9\\ valid_lft forever\n",
            "a3-0-check-npu-free": ours + "=== container /old-vllm stack= /dev/davinci0 /dev/davinci1\n",
        },
    )
    # Each failing check fails its own resource, with its own message; npu-idle passes: our own container.
    assert {name: message.split(": check ")[1].split(":")[0] for name, message in deployment.failed.items()} == {
        f"a3-0-check-{c}": c for c in ("npu-health", "npu-free", "weights-disk", "nic-ip")
    }
    assert "saw container old-vllm holds NPU 0-1" in deployment.failed["a3-0-check-npu-free"]
    assert all(message.endswith(RETRY) for message in deployment.failed.values())


def test_processes_on_the_npus_without_our_container_are_foreign():
    error = failure({"a2-0-check-npu-idle": fixture("npu_smi/a2_busy.txt") + "=== npu-free\n"})
    assert str(error).startswith("node a2-0: check npu-idle: expected no processes on any NPU, saw 3 processes")


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
    assert json.loads(readiness.inputs["environment"]["NODE_SSH"])["a2-0"]["host"] == "192.0.2.11"
    assert "http://192.0.2.11:8000/health" in node_script(readiness)
    assert '"id": *"deepseek_r1"' in node_script(readiness)
    assert readiness.urn in smoke.dependencies
    assert readiness.inputs["triggers"] == [readiness.inputs["create"], ["a2-0-vllm-id", "a2-1-vllm-id"]]


def test_the_smoke_request_goes_through_the_front_door_and_a_new_front_door_is_proved_again(a2):
    smoke, door = a2.named("deepseek-r1-smoke-test"), a2.named("a2-0-front-door")
    assert door.urn in smoke.dependencies
    assert "http://127.0.0.1:8080/v1/completions" in node_script(smoke)
    assert smoke.inputs["triggers"] == [smoke.inputs["create"], ["a2-0-vllm-id", "a2-1-vllm-id"], "a2-0-front-door-id"]


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
        "docker exec -e OPENAI_API_KEY vllm-ascend vllm bench serve --backend vllm --base-url http://192.0.2.11:8000 "
        "--model vllm-ascend/DeepSeek-R1-W8A8 --served-model-name deepseek_r1 --dataset-name random "
        "--random-input-len 200 --num-prompts 200 --request-rate 1 --save-result"
    ) in node_script(bench)
    assert deployment.outputs["verification"]["benchmark"]["output_throughput"] == 125.4
    assert deployment.outputs["verification"]["benchmark"]["resultFile"] == (
        "/root/.cache/benchmarks/a2-random-200p-1qps.json"
    )
    assert deployment.outputs["verification"]["accuracy"] == {
        "gsm8k": {"flexible-extract": 0.9553, "strict-match": 0.9545}
    }
    assert "--model local-completions" in node_script(accuracy)


def test_benchmark_reruns_when_its_settings_change():
    base = run_program(settings(benchmark={"enabled": True}), stack="a2").named("deepseek-r1-benchmark")
    changed = run_program(settings(benchmark={"enabled": True, "numPrompts": 50}), stack="a2").named(
        "deepseek-r1-benchmark"
    )
    assert base.inputs["triggers"] != changed.inputs["triggers"]
    assert "--num-prompts 50" in node_script(changed)


def test_a_failed_smoke_test_fails_the_update():
    deployment = run_program(
        settings(), stack="a2", host_outputs={"deepseek-r1-smoke-test": '{"error": "model not found"}\n404 0.01\n'}
    )
    assert isinstance(deployment.error, StepFailed)
    assert str(deployment.error) == (
        'smoke test: /v1/completions answered HTTP 404: {"error": "model not found"}; run `pulumi up` again once fixed'
    )


def test_api_key_reaches_verification_as_a_secret_environment():
    deployment = run_program(settings(apiKey="sk-verify"), stack="a2", secret_keys=("apiKey",))
    for step in ("readiness", "smoke-test"):
        command = deployment.named(f"deepseek-r1-{step}")
        # Over SSH, environment variables only arrive where sshd accepts them: stdin always does.
        assert command.inputs["stdin"] == "sk-verify\n"
        assert "stdin" in command.secret_inputs
        assert node_script(command).startswith("IFS= read -r VLLM_API_KEY || true; export VLLM_API_KEY; ")
        assert "sk-verify" not in command.inputs["create"]
    assert "sk-verify" not in repr(deployment.outputs)


def test_preflight_can_be_turned_off():
    deployment = run_program(settings(preflight={"enabled": False}), stack="a2")
    # No checks, so no gate either.
    assert names(deployment) == [
        "a2-0-group-view",
        "a2-1-group-view",
        "deepseek-r1-readiness",
        "deepseek-r1-smoke-test",
    ]
    labels = {item["label"] for item in deployment.named("a2-0-vllm").inputs["labels"]}
    assert "deepseek-r1-ascend.driver" not in labels


def staged(**weights):
    return run_program(
        settings(weights={"stage": True, **weights}, modelscopeToken="ms-1"),
        stack="a2",
        secret_keys=("modelscopeToken",),
    )


def test_weights_are_staged_on_every_node_at_once_before_its_container():
    deployment = staged()
    for node in ("a2-0", "a2-1"):
        stage = deployment.named(f"{node}-stage-weights")
        assert node_script(stage).startswith(
            "IFS= read -r MODELSCOPE_API_TOKEN || true; export MODELSCOPE_API_TOKEN; "
            "docker run --rm -e MODELSCOPE_API_TOKEN -e HF_TOKEN -v /root/.cache:/root/.cache"
        )
        assert "modelscope download --model vllm-ascend/DeepSeek-R1-W8A8" in node_script(stage)
        assert (stage.inputs["stdin"], "stdin" in stage.secret_inputs) == ("ms-1\n", True)
        assert stage.urn in deployment.named(f"{node}-vllm").dependencies
        # Only once every node's checks have passed, and with the image the node pulled.
        assert deployment.named(GATE).urn in stage.dependencies
        assert deployment.named(f"{node}-image").urn in stage.dependencies
    # Separate weights directories: no node waits for another's download.
    assert deployment.named("a2-0-stage-weights").urn not in deployment.named("a2-1-stage-weights").dependencies


def test_a_shared_weights_directory_is_downloaded_once_and_verified_by_the_others():
    deployment = staged(shared=True)
    head, other = deployment.named("a2-0-stage-weights"), deployment.named("a2-1-stage-weights")
    assert "modelscope download" in node_script(head)
    assert node_script(other).endswith(
        "if [ -f /root/.cache/.staged-vllm-ascend_DeepSeek-R1-W8A8 ]; then echo already "
        "'staged: vllm-ascend/DeepSeek-R1-W8A8'; else echo 'not staged: no .staged-vllm-ascend_DeepSeek-R1-W8A8 "
        "in the shared weights directory /root/.cache'; fi"
    )
    assert head.urn in other.dependencies


def test_a_local_engine_runs_its_commands_locally():
    raw = settings(preflight={"enabled": False})
    for i, node in enumerate(raw["nodes"]):
        node.update(dockerHost="unix:///var/run/docker.sock", containerName=f"vllm-{i}", hostRoot=f"/srv/sim-{i}")
    deployment = run_program(raw, stack="a2")
    assert names(deployment, LOCAL) == [
        "a2-0-group-view",
        "a2-1-group-view",
        "deepseek-r1-readiness",
        "deepseek-r1-smoke-test",
    ]
    # No SSH at all: the steps run on this machine, like its Docker engine.
    assert json.loads(deployment.named("deepseek-r1-readiness").inputs["environment"]["NODE_SSH"]) == {"a2-0": None}


def test_every_node_s_supervisor_must_see_the_head_and_its_peers_once_the_group_serves(a2):
    readiness = a2.named("deepseek-r1-readiness")
    for node, peer, ip in (("a2-0", "a2-1", "192.0.2.12"), ("a2-1", "a2-0", "192.0.2.11")):
        view = a2.named(f"{node}-group-view")
        assert readiness.urn in view.dependencies
        # Re-run when the group is replaced (its own container), with one edge, not one per node.
        assert [d for d in view.dependencies if d.endswith("-vllm")] == [a2.named(f"{node}-vllm").urn]
        assert spec_of(view)[1]["peers"] == {peer: ip}


def test_without_supervision_nothing_watches_so_nothing_is_checked():
    deployment = run_program(settings(supervision={"enabled": False}), stack="a2")
    assert not [r for r in deployment.resources if r.name.endswith("-group-view")]
