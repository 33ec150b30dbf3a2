"""The Pulumi program under mocks: what `pulumi up` would declare for each stack."""

import json

import pulumi
import pytest
from mocked import run_program, stack_settings
from pulumi.output import Unknown

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
PROVIDER = "pulumi:providers:docker"


@pytest.fixture(scope="module")
def a2():
    return run_program(stack_settings("a2"), stack="a2")


@pytest.fixture(scope="module")
def a3():
    return run_program(stack_settings("a3"), stack="a3")


def labels(container):
    return {item["label"]: item["value"] for item in container.inputs["labels"]}


def env(container):
    return dict(item.split("=", 1) for item in container.inputs["envs"])


def test_a3_declares_one_host_one_image_one_container(a3):
    assert a3.error is None
    assert sorted((r.type, r.name) for r in a3.resources if r.type in (CONTAINER, IMAGE, PROVIDER)) == [
        (CONTAINER, "a3-0-front-door"),
        (CONTAINER, "a3-0-vllm"),
        (IMAGE, "a3-0-front-door-image"),
        (IMAGE, "a3-0-image"),
        (PROVIDER, "a3-0-docker"),
    ]
    assert a3.named("a3-0-docker").inputs["host"] == "ssh://root@192.0.2.10"
    assert a3.named("a3-0-image").inputs["name"] == "m.daocloud.io/quay.io/ascend/vllm-ascend:v0.18.0-a3"


def test_a2_each_node_runs_on_its_own_docker_host(a2):
    for node, ip in (("a2-0", "192.0.2.11"), ("a2-1", "192.0.2.12")):
        provider = a2.named(f"{node}-docker")
        assert provider.inputs["host"] == f"ssh://root@{ip}"
        for child in (a2.named(f"{node}-image"), a2.named(f"{node}-vllm")):
            assert child.provider.startswith(provider.urn + "::")


def test_a2_containers_carry_the_reference_docker_options(a2):
    for node in ("a2-0", "a2-1"):
        inputs = a2.named(f"{node}-vllm").inputs
        assert inputs["networkMode"] == "host"
        assert inputs["shmSize"] == 1024
        assert inputs["privileged"] is False
        assert inputs["restart"] == "unless-stopped"
        assert inputs["name"] == "vllm-ascend"
        assert [d["hostPath"] for d in inputs["devices"]] == [f"/dev/davinci{i}" for i in range(8)] + [
            "/dev/davinci_manager",
            "/dev/devmm_svm",
            "/dev/hisi_hdc",
        ]
        assert {(v["containerPath"], v["readOnly"]) for v in inputs["volumes"]} >= {
            ("/usr/local/Ascend/driver/lib64", True),
            ("/etc/hccn.conf", True),
            ("/root/.cache", False),
        }


def test_a2_head_and_headless_commands_and_env(a2):
    head, worker = a2.named("a2-0-vllm"), a2.named("a2-1-vllm")
    assert "--headless" not in head.inputs["command"]
    assert head.inputs["command"][:3] == ["vllm", "serve", "vllm-ascend/DeepSeek-R1-W8A8"]
    assert worker.inputs["command"][3:11] == [
        "--host",
        "192.0.2.11",
        "--port",
        "8000",
        "--headless",
        "--data-parallel-size",
        "4",
        "--data-parallel-size-local",
    ]
    assert env(head)["HCCL_IF_IP"] == "192.0.2.11"
    assert env(worker)["HCCL_IF_IP"] == "192.0.2.12"
    assert env(worker)["HCCL_BUFFSIZE"] == "200"
    assert labels(head) | {"deepseek-r1-ascend.dp-group": "*"} == {
        "deepseek-r1-ascend.stack": "a2",
        "deepseek-r1-ascend.node": "a2-0",
        "deepseek-r1-ascend.role": "head",
        "deepseek-r1-ascend.model": "deepseek_r1",
        "deepseek-r1-ascend.dp-ranks": "0-1",
        "deepseek-r1-ascend.dp-group": "*",
        "deepseek-r1-ascend.driver": "25.5.0",  # found by the node's preflight
        "deepseek-r1-ascend.cann": "8.5.1",  # read from the pulled image
        "deepseek-r1-ascend.soc": "ascend910b1",
    }


def test_containers_replace_together_and_free_the_npus_first(a2):
    containers = a2.servers()
    triggers = {c.replacement_trigger for c in containers}
    assert len(triggers) == 1 and None not in triggers
    assert triggers == {labels(c)["deepseek-r1-ascend.dp-group"] for c in containers}
    assert all(c.delete_before_replace for c in containers)


def test_containers_start_together_each_after_its_own_image(a2):
    for node, other in (("a2-0", "a2-1"), ("a2-1", "a2-0")):
        deps = a2.named(f"{node}-vllm").dependencies
        assert a2.named(f"{node}-image").urn in deps
        assert not any(urn.endswith((f"::{other}-vllm", f"::{other}-image")) for urn in deps)


def test_components_group_each_node(a2):
    for node in ("a2-0", "a2-1"):
        server = next(r for r in a2.resources if r.type == "deepseek-r1-ascend:index:VllmServer" and r.name == node)
        host = next(r for r in a2.resources if r.type == "deepseek-r1-ascend:index:AscendHost" and r.name == node)
        assert a2.named(f"{node}-vllm").parent == server.urn
        assert a2.named(f"{node}-docker").parent == host.urn


def test_outputs_tell_a_user_where_and_what_runs(a2):
    assert a2.outputs["endpoint"] == "http://192.0.2.11:8080/v1"
    assert a2.outputs["servedModelName"] == "deepseek_r1"
    assert a2.outputs["nodes"]["a2-1"]["role"] == "headless"
    assert a2.outputs["nodes"]["a2-1"]["dataParallelRanks"] == [2, 3]
    assert a2.outputs["nodes"]["a2-1"]["command"].startswith(
        "vllm serve vllm-ascend/DeepSeek-R1-W8A8 --host 192.0.2.11 --port 8000 --headless"
    )
    assert a2.outputs["smokeTest"] == (
        "curl -sS http://192.0.2.11:8080/v1/completions -H 'Content-Type: application/json' -d "
        '\'{"model": "deepseek_r1", "prompt": "The future of AI is", "max_completion_tokens": 50, '
        '"max_tokens": 50, "temperature": 0}\''
    )


def test_four_a2_nodes_declare_four_hosts_with_contiguous_ranks():
    raw = stack_settings("a2")
    raw["nodes"] = [{"name": f"n{i}", "ip": f"192.0.2.{20 + i}", "nic": "eth0"} for i in range(4)]
    raw["serve"] = {"dataParallelSize": 8}
    deployment = run_program(raw, stack="big")
    assert deployment.error is None
    assert len(deployment.of_type(PROVIDER)) == 4
    assert [deployment.outputs["nodes"][f"n{i}"]["dataParallelRanks"] for i in range(4)] == [
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
    ]


def test_an_unchanged_stack_declares_identical_resources(a2):
    again = run_program(stack_settings("a2"), stack="a2")

    def declared(deployment):
        return sorted((r.urn, repr(r.inputs), r.replacement_trigger) for r in deployment.resources)

    assert declared(again) == declared(a2)


def test_a_change_to_one_node_replaces_every_container_of_the_group(a2):
    raw = stack_settings("a2")
    raw["nodes"][1]["nic"] = "eth1"
    changed = run_program(raw, stack="a2")
    for node in ("a2-0", "a2-1"):
        assert changed.named(f"{node}-vllm").replacement_trigger != a2.named(f"{node}-vllm").replacement_trigger


def test_ssh_options_change_the_connection_not_the_containers(a2):
    raw = stack_settings("a2")
    raw["nodes"][1]["sshOpts"] = ["-o", "Port=2222"]
    changed = run_program(raw, stack="a2")
    # Provider inputs reach the engine as JSON text; the site's options come after the pinning.
    assert json.loads(changed.named("a2-1-docker").inputs["sshOpts"])[-2:] == ["-o", "Port=2222"]
    for node in ("a2-0", "a2-1"):
        before, after = a2.named(f"{node}-vllm"), changed.named(f"{node}-vllm")
        assert (after.inputs, after.replacement_trigger) == (before.inputs, before.replacement_trigger)


def test_secrets_stay_secret_in_inputs_and_outputs():
    raw = stack_settings("a2") | {"apiKey": "sk-very-secret", "modelscopeToken": "ms-token"}
    deployment = run_program(raw, stack="a2", secret_keys=("apiKey", "modelscopeToken"))
    assert deployment.error is None
    for container in deployment.servers():
        assert container.secret_inputs == {"envs"}
        assert env(container)["VLLM_API_KEY"] == "sk-very-secret"
        assert "sk-very-secret" not in " ".join(container.inputs["command"])
        assert all("sk-very-secret" not in item["value"] for item in container.inputs["labels"])
    assert "sk-very-secret" not in repr(deployment.outputs)
    assert "ms-token" not in repr(deployment.outputs)
    assert "Authorization: Bearer $VLLM_API_KEY" in deployment.outputs["smokeTest"]


def test_bad_stack_declares_nothing_and_names_every_key():
    raw = stack_settings("a2")
    raw["nodes"][1]["ip"] = "192.0.2.300"
    raw["serve"] = {"tensorParallelSize": 8, "maxNumSeq": 8}
    deployment = run_program(raw, stack="a2")
    assert isinstance(deployment.error, pulumi.RunError)
    assert str(deployment.error) == (
        "invalid configuration for deepseek-r1-ascend:\n"
        "  - nodes[1].ip: '192.0.2.300' is not an IP address; use the address of the node's NIC, e.g. 192.0.2.10\n"
        "  - serve.maxNumSeq: unknown key; did you mean 'maxNumSeqs'? known keys here: host, port, "
        "dataParallelSize, tensorParallelSize, dataParallelRpcPort, quantization, seed, enableExpertParallel, "
        "asyncScheduling, maxNumSeqs, maxModelLen, maxNumBatchedTokens, trustRemoteCode, gpuMemoryUtilization, "
        "speculativeConfig, compilationConfig, enablePrefixCaching, extraArgs\n"
        "  - serve.tensorParallelSize: tensorParallelSize 8 x dataParallelSize 4 = 32 NPUs, but 2 atlas-800-a2 "
        "nodes have 16; every NPU must hold one rank, e.g. dataParallelSize 16 x tensorParallelSize 1, "
        "dataParallelSize 8 x tensorParallelSize 2, dataParallelSize 4 x tensorParallelSize 4, "
        "dataParallelSize 2 x tensorParallelSize 8"
    )
    assert deployment.resources == []


def test_other_namespaces_are_left_to_their_owners():
    deployment = run_program(stack_settings("a3"), stack="a3", other_config={"docker:host": "unix:///x"})
    assert deployment.error is None


def test_secrets_are_taken_as_typed_and_never_echoed():
    raw = stack_settings("a3") | {"apiKey": "20250101123456"}
    deployment = run_program(raw, stack="a3", secret_keys=("apiKey",))
    assert deployment.error is None
    assert env(deployment.named("a3-0-vllm"))["VLLM_API_KEY"] == "20250101123456"


def test_environment_set_as_a_secret_stays_secret():
    raw = stack_settings("a2") | {"env": {"extra": {"HCCL_CONNECT_TIMEOUT": "1200", "SITE_TOKEN": "t0k3n"}}}
    deployment = run_program(raw, stack="a2", secret_keys=("env",))
    for container in deployment.servers():
        assert container.secret_inputs == {"envs"}
        assert env(container)["SITE_TOKEN"] == "t0k3n"
    assert "t0k3n" not in repr(deployment.outputs)


@pytest.mark.parametrize("stack", ["a2", "a3"])
def test_the_first_preview_shows_the_exact_containers(stack):
    preview = run_program(stack_settings(stack), stack=stack, preview=True)
    up = run_program(stack_settings(stack), stack=stack)
    for container in preview.servers():
        inputs, after = container.inputs, up.named(container.name).inputs
        for key in ("envs", "command", "devices", "volumes", "networkMode", "shmSize", "name"):
            assert inputs[key] == after[key], key
        found = {f"deepseek-r1-ascend.{fact}" for fact in ("driver", "cann", "soc")}
        assert {k: v for k, v in labels(container).items() if k not in found} == {
            k: v for k, v in labels(up.named(container.name)).items() if k not in found
        }
        # Only what the checks find on the node and in its image is left to the update.
        assert all(isinstance(labels(container)[label], Unknown) for label in found)


def test_only_nic_auto_waits_for_the_preflight_at_preview():
    raw = stack_settings("a2")
    raw["nodes"][1]["nic"] = "auto"
    preview = run_program(raw, stack="a2", preview=True)
    assert not isinstance(preview.named("a2-0-vllm").inputs["envs"], Unknown)
    assert isinstance(preview.named("a2-1-vllm").inputs["envs"], Unknown)


def test_a_key_set_as_a_secret_keeps_everything_derived_from_it_secret():
    # A credential is refused in extraArgs even under a secret serve (test_config_classes); any
    # other value set with --secret stays secret wherever it goes.
    raw = stack_settings("a2") | {"serve": {"extraArgs": ["--revision", "s3cr3t-branch"]}}
    deployment = run_program(raw, stack="a2", secret_keys=("serve",))
    assert deployment.error is None
    carrying = 0
    for resource in deployment.resources:
        for key, value in resource.inputs.items():
            if "s3cr3t-branch" in repr(value) or key == "triggers" and resource.type.startswith("command:"):
                carrying += 1
                assert key in resource.secret_inputs, (resource.name, key)
    assert carrying > 2
    assert {"nodes", "endpoint", "smokeTest"} <= deployment.secret_outputs
    assert "s3cr3t-branch" in " ".join(deployment.named("a2-0-vllm").inputs["command"])


def test_a_token_in_extra_args_is_refused_even_when_serve_is_a_secret():
    raw = stack_settings("a2") | {"serve": {"extraArgs": ["--hf-token", "hf_s3cr3t"]}}
    deployment = run_program(raw, stack="a2", secret_keys=("serve",))
    assert deployment.resources == [] and isinstance(deployment.error, pulumi.RunError)
    assert "serve.extraArgs[0]: expected" in str(deployment.error) and "hf_s3cr3t" not in str(deployment.error)


# --- the dependency graph as the cluster grows ------------------------------------------------------

GATE = "deepseek-r1-checks-passed"


def a2_nodes(count: int) -> dict:
    raw = stack_settings("a2")
    raw["nodes"] = [{"name": f"n{i}", "ip": f"192.0.2.{20 + i}", "nic": "eth0"} for i in range(count)]
    raw["serve"] = {"dataParallelSize": 2 * count}
    raw["weights"] = {"stage": True}
    return raw


@pytest.fixture(scope="module")
def sized():
    """Previews of 2 and 32 A2 nodes, staging their weights, by node count."""
    return {count: run_program(a2_nodes(count), stack="big", preview=True) for count in (2, 32)}


def checks_of(deployment) -> set[str]:
    return {r.urn for r in deployment.resources if "-check-" in r.name}


@pytest.mark.parametrize("count", [2, 32])
def test_the_gate_waits_for_every_check_of_every_node(sized, count):
    deployment = sized[count]
    assert deployment.error is None
    checks = checks_of(deployment)
    assert len(checks) == 13 * count
    assert set(deployment.named(GATE).dependencies) == checks


@pytest.mark.parametrize("count", [2, 32])
def test_containers_and_stagings_wait_for_the_gate_not_for_each_check(sized, count):
    deployment = sized[count]
    gate, checks = deployment.named(GATE).urn, checks_of(deployment)
    for i in range(count):
        container, stage = deployment.named(f"n{i}-vllm"), deployment.named(f"n{i}-stage-weights")
        assert gate in container.dependencies and gate in stage.dependencies
        assert not checks & set(stage.dependencies)
        # Only the checks whose reports it reads: the driver version and the image's facts become
        # the container's labels.
        assert checks & set(container.dependencies) == {
            deployment.named(f"n{i}-check-{check}").urn for check in ("driver-files", "image-host")
        }


def test_the_dependency_graph_grows_with_the_nodes_not_their_square(sized):
    small, large = sized[2], sized[32]
    # 16 times the nodes: the edges grow about as much, not 256 times.
    assert large.dependency_edges() <= 20 * small.dependency_edges()
    # And nothing waits for more steps one after another on a larger cluster.
    assert large.dependency_depth() == small.dependency_depth()
