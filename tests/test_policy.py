"""The policy pack on the mocked resource graphs: shipped stacks pass, each policy catches a mutated
graph (naming the node) and lets a near-miss through, and unknown preview values never crash it."""

from __future__ import annotations

import json
import runpy

import pulumi_policy
import pytest
import yaml
from policy_harness import (
    POLICY_DIR,
    PROJECT_DIR,
    Node,
    add_volume,
    both,
    drop_env,
    drop_flag,
    drop_input,
    graph,
    messages,
    mutate,
    named,
    policies,
    run,
    set_env,
    set_flag,
    set_input,
)
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE

from core.config import WEIGHTS_MOUNT
from core.plan import NIC_ENV

SHIPPED = ("a3", "a2")


# --- the pack ------------------------------------------------------------------------------------

DEFAULT_LEVELS = {
    "vllm-container-host-isolation": EnforcementLevel.MANDATORY,
    "vllm-image-pinned": EnforcementLevel.MANDATORY,
    "vllm-shm-size": EnforcementLevel.MANDATORY,
    "vllm-host-network": EnforcementLevel.MANDATORY,
    "vllm-npu-devices-match-parallelism": EnforcementLevel.MANDATORY,
    "vllm-w8a8-serve-flags": EnforcementLevel.MANDATORY,
    "remote-command-host-key-pinned": EnforcementLevel.ADVISORY,
    "vllm-dp-group-consistent": EnforcementLevel.MANDATORY,
    "vllm-dp-group-one-image": EnforcementLevel.MANDATORY,
    "vllm-api-key-on-open-api": EnforcementLevel.ADVISORY,
    "vllm-container-privileges": EnforcementLevel.MANDATORY,
    "vllm-host-system-dirs-writable": EnforcementLevel.MANDATORY,
    "vllm-host-system-dirs": EnforcementLevel.ADVISORY,
    "vllm-no-secrets-on-command-line": EnforcementLevel.MANDATORY,
    "vllm-node-network-env": EnforcementLevel.MANDATORY,
}
STACK_POLICIES = {
    "vllm-dp-group-consistent",
    "vllm-dp-group-one-image",
    "vllm-api-key-on-open-api",
    "vllm-node-network-env",
}


def test_policies_and_default_enforcement_levels():
    assert {p.name: p.enforcement_level for p in policies.POLICIES} == DEFAULT_LEVELS
    stack = {p.name for p in policies.POLICIES if isinstance(p, StackValidationPolicy)}
    assert stack == STACK_POLICIES
    assert all(isinstance(p, (ResourceValidationPolicy, StackValidationPolicy)) for p in policies.POLICIES)


def test_main_builds_the_pack_from_the_policy_list(monkeypatch):
    built = {}

    def fake_pack(**kwargs):
        built.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    assert built["name"] == "deepseek-r1-ascend"
    assert [p.name for p in built["policies"]] == [p.name for p in policies.POLICIES]


def test_pack_files():
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"] == {"name": "python", "options": {"virtualenv": "venv"}}
    requirements = (POLICY_DIR / "requirements.txt").read_text().split()
    assert "pulumi-policy==1.21.0" in requirements
    root = (PROJECT_DIR / "requirements.txt").read_text().split()
    assert [r for r in requirements if r.startswith("pulumi==")] == [r for r in root if r.startswith("pulumi==")]
    # The tests run the pack with the project's test requirements: the same pulumi-policy.
    assert "pulumi-policy==1.21.0" in (PROJECT_DIR / "requirements-test.txt").read_text().split()


def test_example_config_names_every_policy_and_only_schema_properties():
    example = json.loads((POLICY_DIR / "policy-config.example.json").read_text())
    by_name = {p.name: p for p in policies.POLICIES}
    assert set(example) == set(by_name)
    for name, value in example.items():
        level = value if isinstance(value, str) else value["enforcementLevel"]
        assert level == DEFAULT_LEVELS[name].value
        if isinstance(value, dict):
            schema = by_name[name].config_schema.properties
            for key, setting in value.items():
                if key != "enforcementLevel":
                    assert setting == schema[key]["default"], (name, key)


# --- shipped stacks --------------------------------------------------------------------------------


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
@pytest.mark.parametrize("stack", SHIPPED)
def test_shipped_stacks_pass_every_policy(stack, preview):
    assert run(graph(stack, preview=preview)) == []


HEAD_IPS = {"a2": "192.0.2.11", "a3": "192.0.2.10"}


@pytest.mark.parametrize("stack", SHIPPED)
def test_shipped_stacks_without_site_secrets_only_get_advisories(stack):
    found = run(graph(stack, api_key=False))
    # Every step reaching a node over SSH, once per node it reaches (npu-tls reaches the head too).
    steps = [n for n in graph(stack, api_key=False) if n.type == "command:local:Command"]
    reached = sum(len(json.loads(n.inputs["environment"]["NODE_SSH"])) for n in steps)
    host_key = [v for v in found if v.policy == "remote-command-host-key-pinned"]
    assert len(host_key) == reached > 0
    found = [v for v in found if v.policy != "remote-command-host-key-pinned"]
    assert [(v.policy, v.message) for v in found] == [
        (
            "vllm-api-key-on-open-api",
            f"node {stack}-0: the model is served without --api-key or VLLM_API_KEY, so anyone who reaches "
            f"{HEAD_IPS[stack]}:8000 or the front door uses it; set a key with "
            "`pulumi config set --secret apiKey <key>`",
        )
    ]
    assert found[0].urn == named(graph(stack), f"{stack}-0-vllm").urn


def test_three_node_group_passes():
    g = graph("a2", nodes=3)
    assert "--data-parallel-start-rank 4" in " ".join(named(g, "a2-2-vllm").inputs["command"])
    assert run(g) == []


# --- mutated graphs: each violation, and a near-miss that passes ---------------------------------


def _driver_writable(path, value):
    def change(inputs):
        for volume in inputs["volumes"]:
            if volume["containerPath"] == path:
                if value is None:
                    volume.pop("readOnly")
                else:
                    volume["readOnly"] = value

    return change


def _drop_device(path):
    return lambda inputs: inputs.__setitem__("devices", [d for d in inputs["devices"] if d["containerPath"] != path])


def _reroot_devices(root):
    def change(inputs):
        for d in inputs["devices"]:
            d["hostPath"] = root + d["hostPath"]

    return change


def _reverse_devices(inputs):
    inputs["devices"].reverse()


def _weights_at(host):
    def change(inputs):
        next(v for v in inputs["volumes"] if v["containerPath"] == WEIGHTS_MOUNT)["hostPath"] = host

    return change


FIX = "set start ranks to node index x data-parallel-size-local (0, 2, ...)"
IMAGE = "m.daocloud.io/quay.io/ascend/vllm-ascend:v0.18.0"
# v0.18.0 as a node pulls it after the tag was pushed again: another build under the same tag.
REPUSHED_ID = "sha256:0f1e2d3c4b5a" + "0" * 52
WEIGHTS_FIX = (
    "set model.weightsDir to a directory of its own outside the host system directories (e.g. /data/models), "
    f"or leave it at its default {WEIGHTS_MOUNT}"
)
ONE_IMAGE_FIX = (
    "different vllm builds hang the group at its start-up handshake; pin image.ref in the stack config to one "
    "@sha256: digest, so that every node pulls the same build"
)

# (id, stack, resource, change, policy, expected message)
VIOLATIONS = [
    (
        "privileged",
        "a2",
        "a2-1-vllm",
        set_input("privileged", True),
        "vllm-container-host-isolation",
        "node a2-1: the container runs privileged, which hands it every host device and capability; "
        "set container.privileged to false (the NPUs are passed as devices)",
    ),
    (
        "docker-socket",
        "a2",
        "a2-1-vllm",
        add_volume("/var/run/docker.sock", "/var/run/docker.sock"),
        "vllm-container-host-isolation",
        "node a2-1: /var/run/docker.sock is mounted, which gives the container root on the host "
        "through the container engine; remove that volume",
    ),
    (
        "dir-holding-docker-socket",
        "a3",
        "a3-0-vllm",
        add_volume("/run/", "/host-run", True),
        "vllm-container-host-isolation",
        "node a3-0: /run (holding /run/docker.sock) is mounted, which gives the container root on the "
        "host through the container engine; remove that volume",
    ),
    (
        "docker-socket-bind-mount",
        "a3",
        "a3-0-vllm",
        set_input("mounts", [{"type": "bind", "source": "/var/run/docker.sock", "target": "/docker.sock"}]),
        "vllm-container-host-isolation",
        "node a3-0: /var/run/docker.sock is mounted, which gives the container root on the host "
        "through the container engine; remove that volume",
    ),
    (
        "host-root",
        "a3",
        "a3-0-vllm",
        add_volume("/", "/host", True),
        "vllm-container-host-isolation",
        "node a3-0: the host root / is mounted at /host, which exposes the whole host; mount only the "
        "paths the container needs",
    ),
    (
        "driver-writable",
        "a2",
        "a2-0-vllm",
        _driver_writable("/usr/local/Ascend/driver/lib64", False),
        "vllm-container-host-isolation",
        "node a2-0: driver mount /usr/local/Ascend/driver/lib64 -> /usr/local/Ascend/driver/lib64 is "
        "writable, so the container could change the host's NPU driver; mount it with readOnly: true",
    ),
    (
        "driver-read-only-unset",
        "a2",
        "a2-0-vllm",
        _driver_writable("/usr/local/bin/npu-smi", None),
        "vllm-container-host-isolation",
        "node a2-0: driver mount /usr/local/bin/npu-smi -> /usr/local/bin/npu-smi is writable, so the "
        "container could change the host's NPU driver; mount it with readOnly: true",
    ),
    (
        "image-latest",
        "a2",
        "a2-1-image",
        set_input("name", "m.daocloud.io/quay.io/ascend/vllm-ascend:latest"),
        "vllm-image-pinned",
        "node a2-1: image 'm.daocloud.io/quay.io/ascend/vllm-ascend:latest' uses the moving tag 'latest'; "
        "pin a version tag such as :v0.18.0 or a @sha256: digest; set image.tag or image.ref in the stack config",
    ),
    (
        "image-untagged",
        "a3",
        "a3-0-image",
        set_input("name", "registry:5000/ascend/vllm-ascend"),
        "vllm-image-pinned",
        "node a3-0: image 'registry:5000/ascend/vllm-ascend' has no tag; pin a version tag such as "
        ":v0.18.0 or a @sha256: digest; set image.tag or image.ref in the stack config",
    ),
    (
        "container-image-reference",
        "a3",
        "a3-0-vllm",
        set_input("image", "quay.io/ascend/vllm-ascend"),
        "vllm-image-pinned",
        "node a3-0: image 'quay.io/ascend/vllm-ascend' has no tag; pin a version tag such as :v0.18.0 "
        "or a @sha256: digest; set image.tag or image.ref in the stack config",
    ),
    (
        "shm-small",
        "a2",
        "a2-1-vllm",
        set_input("shmSize", 1023),
        "vllm-shm-size",
        "node a2-1: shmSize is 1023 MiB, below 1024 MiB; vllm's workers need more shared memory: set "
        "container.shmSize to at least 1024 MiB (e.g. 1g)",
    ),
    (
        "shm-unset",
        "a3",
        "a3-0-vllm",
        drop_input("shmSize"),
        "vllm-shm-size",
        "node a3-0: shmSize is not set, so Docker gives 64 MiB of /dev/shm and vllm's workers fail or "
        "hang; set container.shmSize to at least 1024 MiB (e.g. 1g)",
    ),
    (
        "bridge-network-multi-node",
        "a2",
        "a2-1-vllm",
        set_input("networkMode", "bridge"),
        "vllm-host-network",
        "node a2-1: runs data-parallel ranks of a multi-node group on 'bridge' networking, so the other "
        "nodes cannot reach its HCCL and RPC ports; set networkMode to 'host'",
    ),
    (
        "default-network-multi-node",
        "a2",
        "a2-0-vllm",
        drop_input("networkMode"),
        "vllm-host-network",
        "node a2-0: runs data-parallel ranks of a multi-node group on Docker's default bridge networking, "
        "so the other nodes cannot reach its HCCL and RPC ports; set networkMode to 'host'",
    ),
    (
        "npu-missing",
        "a2",
        "a2-0-vllm",
        _drop_device("/dev/davinci7"),
        "vllm-npu-devices-match-parallelism",
        "node a2-0: --tensor-parallel-size 4 x --data-parallel-size-local 2 = 8 NPUs, but 7 /dev/davinciN "
        "devices are mounted (/dev/davinci0, /dev/davinci1, /dev/davinci2, /dev/davinci3, /dev/davinci4, "
        "/dev/davinci5, /dev/davinci6); the missing ranks never start and the group hangs: mount "
        "/dev/davinci0../dev/davinci7 or change the parallel sizes",
    ),
    (
        "npu-idle",
        "a2",
        "a2-1-vllm",
        set_flag("--data-parallel-size-local", "1"),
        "vllm-npu-devices-match-parallelism",
        "node a2-1: --tensor-parallel-size 4 x --data-parallel-size-local 1 = 4 NPUs, but 8 /dev/davinciN "
        "devices are mounted (/dev/davinci0, /dev/davinci1, /dev/davinci2, /dev/davinci3, /dev/davinci4, "
        "/dev/davinci5, /dev/davinci6, /dev/davinci7); the extra NPUs sit idle: mount "
        "/dev/davinci0../dev/davinci3 or change the parallel sizes",
    ),
    (
        "npu-single-node-uses-dp-size",
        "a3",
        "a3-0-vllm",
        set_flag("--tensor-parallel-size", "2"),
        "vllm-npu-devices-match-parallelism",
        "node a3-0: --tensor-parallel-size 2 x --data-parallel-size 4 = 8 NPUs, but 16 /dev/davinciN "
        "devices are mounted (" + ", ".join(f"/dev/davinci{i}" for i in range(16)) + "); the extra NPUs "
        "sit idle: mount /dev/davinci0../dev/davinci7 or change the parallel sizes",
    ),
    (
        "management-device-missing",
        "a3",
        "a3-0-vllm",
        _drop_device("/dev/devmm_svm"),
        "vllm-npu-devices-match-parallelism",
        "node a3-0: management device /dev/devmm_svm is not mounted, so the NPU runtime cannot open the "
        "NPUs; add every one of /dev/davinci_manager, /dev/devmm_svm, /dev/hisi_hdc to devices",
    ),
    (
        "quantization-missing",
        "a2",
        "a2-1-vllm",
        drop_flag("--quantization"),
        "vllm-w8a8-serve-flags",
        "node a2-1: vllm-ascend/DeepSeek-R1-W8A8 is a W8A8 checkpoint but the command has no "
        "--quantization; vllm-ascend loads it only with --quantization ascend (serve.quantization)",
    ),
    (
        "quantization-wrong",
        "a3",
        "a3-0-vllm",
        set_flag("--quantization", "fp8"),
        "vllm-w8a8-serve-flags",
        "node a3-0: vllm-ascend/DeepSeek-R1-W8A8 is a W8A8 checkpoint but the command has --quantization "
        "fp8; vllm-ascend loads it only with --quantization ascend (serve.quantization)",
    ),
    (
        "memory-utilization-high",
        "a3",
        "a3-0-vllm",
        set_flag("--gpu-memory-utilization", "0.96"),
        "vllm-w8a8-serve-flags",
        "node a3-0: --gpu-memory-utilization 0.96 is outside (0, 0.95]; the NPU runtime and HCCL buffers "
        "need the rest: set serve.gpuMemoryUtilization to e.g. 0.92",
    ),
    (
        "memory-utilization-zero",
        "a2",
        "a2-0-vllm",
        set_flag("--gpu-memory-utilization", "0"),
        "vllm-w8a8-serve-flags",
        "node a2-0: --gpu-memory-utilization 0 is outside (0, 0.95]; the NPU runtime and HCCL buffers "
        "need the rest: set serve.gpuMemoryUtilization to e.g. 0.92",
    ),
    (
        "second-head",
        "a2",
        "a2-1-vllm",
        drop_flag("--headless"),
        "vllm-dp-group-consistent",
        "node a2-1: is a second head (no --headless) beside a2-0; one DP group has exactly one head: "
        "add --headless to a2-1",
    ),
    (
        "no-head",
        "a2",
        "a2-0-vllm",
        set_flag("--headless"),
        "vllm-dp-group-consistent",
        "node a2-0: every node runs --headless, so no node serves the API or coordinates the group; "
        "remove --headless from the first node (a2-0)",
    ),
    (
        "dp-size-differs",
        "a2",
        "a2-1-vllm",
        set_flag("--data-parallel-size", "8"),
        "vllm-dp-group-consistent",
        "node a2-1: --data-parallel-size 8, but head a2-0 has 4; every node of a DP group needs the same value",
    ),
    (
        "rpc-port-differs",
        "a2",
        "a2-1-vllm",
        set_flag("--data-parallel-rpc-port", "13390"),
        "vllm-dp-group-consistent",
        "node a2-1: --data-parallel-rpc-port 13390, but head a2-0 has 13389; every node of a DP group "
        "needs the same value",
    ),
    (
        "address-missing",
        "a2",
        "a2-1-vllm",
        drop_flag("--data-parallel-address"),
        "vllm-dp-group-consistent",
        "node a2-1: no --data-parallel-address, but head a2-0 has 192.0.2.11; every node of a DP group "
        "needs the same value",
    ),
    (
        "address-not-head-ip",
        "a2",
        "a2-0-vllm",
        set_env("HCCL_IF_IP", "192.0.2.99"),
        "vllm-dp-group-consistent",
        "node a2-1: --data-parallel-address 192.0.2.11 is not the address of head a2-0 (192.0.2.99, its "
        "HCCL_IF_IP); the ranks would wait for a head that is not there: set it to 192.0.2.99 (nodes[0].ip)",
    ),
    (
        "start-rank-overlaps",
        "a2",
        "a2-1-vllm",
        set_flag("--data-parallel-start-rank", "1"),
        "vllm-dp-group-consistent",
        f"node a2-1: --data-parallel-start-rank 1 overlaps ranks 0-1 of node a2-0; {FIX}",
    ),
    (
        "start-rank-gap",
        "a2",
        "a2-1-vllm",
        both(set_flag("--data-parallel-start-rank", "3"), set_flag("--data-parallel-size-local", "1")),
        "vllm-dp-group-consistent",
        f"node a2-1: --data-parallel-start-rank 3 leaves ranks 2 unassigned (after node a2-0's ranks 0-1), "
        f"and the group waits for them forever; {FIX}",
    ),
    (
        "ranks-exceed-size",
        "a2",
        "a2-1-vllm",
        set_flag("--data-parallel-start-rank", "4"),
        "vllm-dp-group-consistent",
        f"node a2-1: ranks 4-5 exceed --data-parallel-size 4 (ranks 0-3); make data-parallel-size-local x "
        f"nodes equal --data-parallel-size and {FIX}",
    ),
    (
        "ranks-uncovered",
        "a2",
        "a2-1-vllm",
        set_flag("--data-parallel-size-local", "1"),
        "vllm-dp-group-consistent",
        "node a2-1: ranks 3 of --data-parallel-size 4 are held by no node (the last, a2-1, ends at rank 2), "
        "and the group waits for them forever; make data-parallel-size-local x nodes equal --data-parallel-size",
    ),
    (
        "image-pushed-again",
        "a2",
        "a2-1-vllm",
        set_input("image", REPUSHED_ID),
        "vllm-dp-group-one-image",
        f"nodes a2-0 and a2-1 of one data-parallel group run different images ({IMAGE} (id eabe4e976d71) on "
        f"a2-0, {IMAGE} (id 0f1e2d3c4b5a) on a2-1): {ONE_IMAGE_FIX}",
    ),
    (
        "model-flag-differs",
        "a2",
        "a2-1-vllm",
        set_flag("--max-model-len", "8192"),
        "vllm-dp-group-consistent",
        "node a2-1: model flags differ from head a2-0: --max-model-len 8192 (head: 16384); every node must "
        "serve the same model configuration (set it once under serve.*)",
    ),
    (
        "model-switch-missing",
        "a2",
        "a2-1-vllm",
        drop_flag("--enable-expert-parallel"),
        "vllm-dp-group-consistent",
        "node a2-1: model flags differ from head a2-0: --enable-expert-parallel missing (head: set); every "
        "node must serve the same model configuration (set it once under serve.*)",
    ),
    (
        "open-api-without-key",
        "a2",
        "a2-0-vllm",
        set_env("VLLM_API_KEY", ""),
        "vllm-api-key-on-open-api",
        "node a2-0: the model is served without --api-key or VLLM_API_KEY, so anyone who reaches "
        "192.0.2.11:8000 or the front door uses it; set a key with `pulumi config set --secret apiKey <key>`",
    ),
    (
        "open-api-on-every-interface-with-a-key",
        "a2",
        "a2-0-vllm",
        set_flag("--host", "0.0.0.0"),
        "vllm-api-key-on-open-api",
        "node a2-0: the model is served on every interface (0.0.0.0:8000), where /invocations and the routes "
        "outside /v1 need no key; leave serve.host unset so vllm listens on the head's cluster address behind "
        "the front door (frontDoor), which exposes only /v1 and checks the key",
    ),
    # --- capabilities and host namespaces
    (
        "capability-added",
        "a2",
        "a2-0-vllm",
        set_input("capabilities", {"adds": ["SYS_ADMIN"]}),
        "vllm-container-privileges",
        "node a2-0: capabilities.adds SYS_ADMIN gives the serving container a host privilege vllm does not "
        'need; remove it, or state why in the pack config: "vllm-container-privileges": '
        '{"allowedCapabilities": {"SYS_ADMIN": "<reason>"}}',
    ),
    (
        "capability-with-prefix",
        "a3",
        "a3-0-vllm",
        set_input("capabilities", {"adds": ["cap_net_admin"], "drops": ["MKNOD"]}),
        "vllm-container-privileges",
        "node a3-0: capabilities.adds cap_net_admin gives the serving container a host privilege vllm does "
        'not need; remove it, or state why in the pack config: "vllm-container-privileges": '
        '{"allowedCapabilities": {"NET_ADMIN": "<reason>"}}',
    ),
    (
        "host-pid",
        "a2",
        "a2-1-vllm",
        set_input("pidMode", "host"),
        "vllm-container-privileges",
        "node a2-1: pidMode 'host' puts the serving container in the host's PID namespace, so it can see, "
        "trace and signal every process on the host; remove pidMode, or state why in the pack config: "
        '"vllm-container-privileges": {"hostPidReason": "<reason>"}',
    ),
    (
        "host-ipc",
        "a3",
        "a3-0-vllm",
        set_input("ipcMode", "host"),
        "vllm-container-privileges",
        "node a3-0: ipcMode 'host' puts the serving container in the host's IPC namespace, so it shares the "
        "host's shared memory (vllm needs only its own shmSize); remove ipcMode, or state why in the pack "
        'config: "vllm-container-privileges": {"hostIpcReason": "<reason>"}',
    ),
    # --- host system directories
    (
        "etc-writable",
        "a2",
        "a2-0-vllm",
        add_volume("/etc", "/host/etc"),
        "vllm-host-system-dirs-writable",
        "node a2-0: host system directory /etc is mounted writable at /host/etc, so the serving container can "
        "change the host itself; remove that volume, or give it readOnly: true if the container must read it",
    ),
    (
        "root-ssh-writable",
        "a3",
        "a3-0-vllm",
        add_volume("/root/.ssh/", "/root/.ssh", False),
        "vllm-host-system-dirs-writable",
        "node a3-0: /root/.ssh (in host system directory /root) is mounted writable at /root/.ssh, so the "
        "serving container can change the host itself; remove that volume, or give it readOnly: true if the "
        "container must read it",
    ),
    (
        "var-bind-mount",
        "a3",
        "a3-0-vllm",
        set_input("mounts", [{"type": "bind", "source": "/usr", "target": "/host-usr"}]),
        "vllm-host-system-dirs-writable",
        "node a3-0: host system directory /usr is mounted writable at /host-usr, so the serving container can "
        "change the host itself; remove that volume, or give it readOnly: true if the container must read it",
    ),
    (
        "weights-dir-is-a-system-dir",
        "a2",
        "a2-1-vllm",
        _weights_at("/usr"),
        "vllm-host-system-dirs-writable",
        f"node a2-1: host system directory /usr is mounted writable at {WEIGHTS_MOUNT}, so the serving "
        f"container can change the host itself; {WEIGHTS_FIX}",
    ),
    (
        "weights-below-root",  # only the tutorial's /root/.cache is the weights directory's exception
        "a3",
        "a3-0-vllm",
        _weights_at("/root/weights"),
        "vllm-host-system-dirs-writable",
        f"node a3-0: /root/weights (in host system directory /root) is mounted writable at {WEIGHTS_MOUNT}, so "
        f"the serving container can change the host itself; {WEIGHTS_FIX}",
    ),
    (
        "etc-read-only",
        "a2",
        "a2-1-vllm",
        add_volume("/etc", "/host/etc", True),
        "vllm-host-system-dirs",
        "node a2-1: host system directory /etc is mounted read-only at /host/etc, which shows the serving "
        "container the host's files (configuration, keys, other services' state); remove that volume, or "
        "mount only the files it needs from outside the system directories",
    ),
    (
        "var-lib-docker-read-only",
        "a3",
        "a3-0-vllm",
        set_input("mounts", [{"type": "bind", "source": "/var/lib/docker", "target": "/docker", "readOnly": True}]),
        "vllm-host-system-dirs",
        "node a3-0: host system directory /var/lib/docker is mounted read-only at /docker, which shows the "
        "serving container the host's files (configuration, keys, other services' state); remove that "
        "volume, or mount only the files it needs from outside the system directories",
    ),
    # --- credentials on the command line
    (
        "api-key-flag",
        "a2",
        "a2-0-vllm",
        set_flag("--api-key", "sk-live-0123456789abcdefghij"),
        "vllm-no-secrets-on-command-line",
        "node a2-0: --api-key passes a credential on the vllm serve command line, where `docker inspect`, `ps` "
        "on the node and the Pulumi state show it in plain text; remove it and set `pulumi config set --secret "
        "apiKey <value>`: the container gets it as VLLM_API_KEY, which vllm reads like --api-key",
    ),
    (
        "api-key-equals-form",
        "a3",
        "a3-0-vllm",
        lambda i: i["command"].append("--api-key=hunter2"),
        "vllm-no-secrets-on-command-line",
        "node a3-0: --api-key passes a credential on the vllm serve command line, where `docker inspect`, `ps` "
        "on the node and the Pulumi state show it in plain text; remove it and set `pulumi config set --secret "
        "apiKey <value>`: the container gets it as VLLM_API_KEY, which vllm reads like --api-key",
    ),
    (
        "api-key-prefix",
        "a3",
        "a3-0-vllm",
        set_flag("--api_k", "hunter2"),
        "vllm-no-secrets-on-command-line",
        "node a3-0: --api_k passes a credential on the vllm serve command line, where `docker inspect`, `ps` "
        "on the node and the Pulumi state show it in plain text; remove it and set `pulumi config set --secret "
        "apiKey <value>`: the container gets it as VLLM_API_KEY, which vllm reads like --api-key",
    ),
    (
        "hf-token-flag",
        "a3",
        "a3-0-vllm",
        set_flag("--hf-token", "hf_" + "a" * 34),
        "vllm-no-secrets-on-command-line",
        "node a3-0: --hf-token passes a credential on the vllm serve command line, where `docker inspect`, "
        "`ps` on the node and the Pulumi state show it in plain text; remove it and set `pulumi config set "
        "--secret hfToken <value>`: the container gets it as HF_TOKEN, which vllm reads like --hf-token",
    ),
    (
        "token-inside-another-flag",
        "a3",
        "a3-0-vllm",
        set_flag("--model-loader-extra-config", '{"token": "hf_' + "b" * 34 + '"}'),
        "vllm-no-secrets-on-command-line",
        "node a3-0: --model-loader-extra-config passes a credential on the vllm serve command line, where "
        "`docker inspect`, `ps` on the node and the Pulumi state show it in plain text; remove it from "
        "serve.extraArgs and hand the value over in a secret environment variable (`pulumi config set "
        "--secret --path env.extra.<NAME> <value>`) that vllm reads instead",
    ),
    # --- per-node network settings
    (
        "hccl-ip-copied-from-head",
        "a2",
        "a2-1-vllm",
        set_env("HCCL_IF_IP", "192.0.2.11"),
        "vllm-node-network-env",
        "node a2-1: HCCL_IF_IP 192.0.2.11 is not 192.0.2.12, the address the node is reached at (its Docker "
        "host); HCCL would bind an address that is not this node's and the group hangs at start-up: set it "
        "to 192.0.2.12 (nodes[].ip of a2-1 in the stack config), or point its dockerHost at the machine that "
        "has that address",
    ),
    (
        "docker-host-elsewhere",
        "a2",
        "a2-1-docker",
        set_input("host", "ssh://root@192.0.2.13:2222"),
        "vllm-node-network-env",
        "node a2-1: HCCL_IF_IP 192.0.2.12 is not 192.0.2.13, the address the node is reached at (its Docker "
        "host); HCCL would bind an address that is not this node's and the group hangs at start-up: set it "
        "to 192.0.2.13 (nodes[].ip of a2-1 in the stack config), or point its dockerHost at the machine that "
        "has that address",
    ),
    (
        "hccl-ip-not-dp-address",
        "local",
        "sim-0-vllm",
        set_env("HCCL_IF_IP", "127.0.0.9"),
        "vllm-node-network-env",
        "node sim-0: HCCL_IF_IP 127.0.0.9 is not 127.0.0.1, the address the node is reached at (the group's "
        "--data-parallel-address); HCCL would bind an address that is not this node's and the group hangs at "
        "start-up: set it to 127.0.0.1 (nodes[].ip of sim-0 in the stack config)",
    ),
    (
        "hccl-ip-duplicate",
        "local",
        "sim-1-vllm",
        set_env("HCCL_IF_IP", "127.0.0.1"),
        "vllm-node-network-env",
        "node sim-1: HCCL_IF_IP 127.0.0.1 is also node sim-0's; two ranks claiming one address hang HCCL at "
        "start-up: set it to the node's own address (nodes[].ip of sim-1 in the stack config)",
    ),
    (
        "hccl-ip-missing",
        "a2",
        "a2-1-vllm",
        drop_env("HCCL_IF_IP"),
        "vllm-node-network-env",
        "node a2-1: HCCL_IF_IP is not set, so HCCL picks an interface itself, which need not be the one the "
        "other nodes reach; set it to the node's own address (nodes[].ip of a2-1 in the stack config)",
    ),
    (
        "hccl-ip-not-an-address",
        "a3",
        "a3-0-vllm",
        set_env("HCCL_IF_IP", "eth0"),
        "vllm-node-network-env",
        "node a3-0: HCCL_IF_IP eth0 is not an IP address; set it to the node's own address (nodes[].ip of "
        "a3-0 in the stack config)",
    ),
    (
        "interfaces-disagree",
        "a2",
        "a2-0-vllm",
        set_env("TP_SOCKET_IFNAME", "eth1"),
        "vllm-node-network-env",
        "node a2-0: the interface variables disagree (GLOO_SOCKET_IFNAME eth0, TP_SOCKET_IFNAME eth1, "
        "HCCL_SOCKET_IFNAME eth0), so gloo, the tensor-parallel sockets and HCCL use different NICs and the "
        "group hangs or crawls; set all three to the NIC that holds HCCL_IF_IP (nodes[].nic of a2-0 in the "
        "stack config sets them)",
    ),
    (
        "interface-missing",
        "a3",
        "a3-0-vllm",
        drop_env("GLOO_SOCKET_IFNAME"),
        "vllm-node-network-env",
        "node a3-0: the interface variables disagree (GLOO_SOCKET_IFNAME (not set), TP_SOCKET_IFNAME eth0, "
        "HCCL_SOCKET_IFNAME eth0), so gloo, the tensor-parallel sockets and HCCL use different NICs and the "
        "group hangs or crawls; set all three to the NIC that holds HCCL_IF_IP (nodes[].nic of a3-0 in the "
        "stack config sets them)",
    ),
]


# Mistakes that legitimately break a second guardrail too.
ALSO_REPORTED = {
    "npu-idle": {"vllm-dp-group-consistent"},  # a2-1 now holds one rank: rank 3 is uncovered
    "start-rank-gap": {"vllm-npu-devices-match-parallelism"},  # 1 local rank x tp4 on 8 NPUs
    "ranks-uncovered": {"vllm-npu-devices-match-parallelism"},
    # a serve flag changed on one node only also splits the group's model flags
    "quantization-missing": {"vllm-dp-group-consistent"},
    "memory-utilization-zero": {"vllm-dp-group-consistent"},
    # the head's HCCL_IF_IP is no longer the address its Docker host reaches
    "address-not-head-ip": {"vllm-node-network-env"},
    # the head's HCCL_IF_IP is no longer the group's --data-parallel-address
    "hccl-ip-not-dp-address": {"vllm-dp-group-consistent"},
}


@pytest.mark.parametrize("case", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_mutation_is_reported(case):
    case_id, stack, resource, change, policy, expected = case
    g = mutate(graph(stack), resource, change)
    found = run(g)
    assert expected in messages(found, policy), messages(found, policy)
    assert all(m.startswith(("node ", "nodes ")) for m in messages(found, policy))
    others = {v.policy for v in found} - {policy}
    assert others == ALSO_REPORTED.get(case_id, set()), found
    if policy in STACK_POLICIES:
        # Stack violations point at the node's container: the one named, or for the group the one changed.
        node = expected.split(":", 1)[0].removeprefix("node ")
        urn = named(g, f"{node}-vllm" if expected.startswith("node ") else resource).urn
        assert urn in {v.urn for v in found if v.message == expected}


def _headless_host(inputs):
    set_flag("--host", "127.0.0.1")(inputs)


# (id, stack, resource, change, policy)
NEAR_MISSES = [
    ("privileged-false-explicit", "a3", "a3-0-vllm", set_input("privileged", False), "vllm-container-host-isolation"),
    ("privileged-unset", "a3", "a3-0-vllm", drop_input("privileged"), "vllm-container-host-isolation"),
    (
        "other-run-dir",
        "a2",
        "a2-1-vllm",
        add_volume("/var/run/ascend", "/var/run/ascend", True),
        "vllm-container-host-isolation",
    ),
    ("data-dir", "a3", "a3-0-vllm", add_volume("/data/models", "/models"), "vllm-container-host-isolation"),
    (
        "writable-weights",
        "a3",
        "a3-0-vllm",
        add_volume("/srv/cache", "/srv/cache", False),
        "vllm-container-host-isolation",
    ),
    (
        "driver-under-host-root",
        "a2",
        "a2-0-vllm",
        add_volume("/host/usr/local/Ascend/driver/lib64", "/usr/local/Ascend/driver/lib64", True),
        "vllm-container-host-isolation",
    ),
    (
        "image-digest",
        "a2",
        "a2-1-image",
        set_input("name", "quay.io/ascend/vllm-ascend@sha256:" + "0" * 64),
        "vllm-image-pinned",
    ),
    (
        "image-latest-prefix-tag",
        "a3",
        "a3-0-image",
        set_input("name", "quay.io/ascend/vllm-ascend:latest-a3"),
        "vllm-image-pinned",
    ),
    (
        "registry-port-and-tag",
        "a3",
        "a3-0-image",
        set_input("name", "registry:5000/ascend/vllm-ascend:v0.18.0"),
        "vllm-image-pinned",
    ),
    ("shm-exactly-1g", "a2", "a2-1-vllm", set_input("shmSize", 1024), "vllm-shm-size"),
    ("shm-larger", "a3", "a3-0-vllm", set_input("shmSize", 16384), "vllm-shm-size"),
    ("bridge-single-node", "a3", "a3-0-vllm", set_input("networkMode", "bridge"), "vllm-host-network"),
    ("devices-reordered", "a2", "a2-0-vllm", _reverse_devices, "vllm-npu-devices-match-parallelism"),
    ("devices-under-host-root", "a3", "a3-0-vllm", _reroot_devices("/host"), "vllm-npu-devices-match-parallelism"),
    (
        "fewer-npus-smaller-tp",
        "a3",
        "a3-0-vllm",
        both(set_flag("--tensor-parallel-size", "2"), *[_drop_device(f"/dev/davinci{i}") for i in range(8, 16)]),
        "vllm-npu-devices-match-parallelism",
    ),
    (
        "memory-utilization-limit",
        "a3",
        "a3-0-vllm",
        set_flag("--gpu-memory-utilization", "0.95"),
        "vllm-w8a8-serve-flags",
    ),
    ("memory-utilization-default", "a2", "a2-0-vllm", drop_flag("--gpu-memory-utilization"), "vllm-w8a8-serve-flags"),
    (
        "other-model-without-quantization",
        "a3",
        "a3-0-vllm",
        lambda i: (drop_flag("--quantization")(i), i["command"].__setitem__(2, "deepseek-ai/DeepSeek-R1")),
        "vllm-w8a8-serve-flags",
    ),
    (
        "quantization-equals-form",
        "a3",
        "a3-0-vllm",
        lambda i: (drop_flag("--quantization")(i), i["command"].append("--quantization=ascend")),
        "vllm-w8a8-serve-flags",
    ),
    ("headless-host-differs", "a2", "a2-1-vllm", _headless_host, "vllm-dp-group-consistent"),
    ("headless-port-differs", "a2", "a2-1-vllm", set_flag("--port", "8001"), "vllm-dp-group-consistent"),
    (
        "model-flags-reordered",
        "a2",
        "a2-1-vllm",
        lambda i: (drop_flag("--seed")(i), set_flag("--seed", "1024")(i)),
        "vllm-dp-group-consistent",
    ),
    (
        "image-from-a-mirror",  # another reference, the same image id: one build
        "a2",
        "a2-1-image",
        set_input("name", "quay.io/ascend/vllm-ascend:v0.18.0"),
        "vllm-dp-group-one-image",
    ),
    (
        "image-id-unknown-at-preview",  # the same reference, pulled again: its id comes at `pulumi up`
        "a2",
        "a2-1-vllm",
        set_input("image", UNKNOWN_STRING_VALUE),
        "vllm-dp-group-one-image",
    ),
    ("image-of-a-single-node", "a3", "a3-0-vllm", set_input("image", REPUSHED_ID), "vllm-dp-group-one-image"),
    ("head-listens-privately", "a2", "a2-0-vllm", set_flag("--host", "192.0.2.11"), "vllm-api-key-on-open-api"),
    ("api-key-flag", "a2", "a2-0-vllm", set_flag("--api-key", "k"), "vllm-api-key-on-open-api"),
    ("headless-without-key", "a2", "a2-1-vllm", set_env("VLLM_API_KEY", ""), "vllm-api-key-on-open-api"),
    (
        "capabilities-dropped",
        "a2",
        "a2-0-vllm",
        set_input("capabilities", {"drops": ["ALL"]}),
        "vllm-container-privileges",
    ),
    ("no-capabilities-added", "a3", "a3-0-vllm", set_input("capabilities", {"adds": []}), "vllm-container-privileges"),
    (
        "private-namespaces",
        "a3",
        "a3-0-vllm",
        both(set_input("pidMode", ""), set_input("ipcMode", "private")),
        "vllm-container-privileges",
    ),
    ("data-mount-read-only", "a3", "a3-0-vllm", add_volume("/data/models", "/models", True), "vllm-host-system-dirs"),
    (
        "data-below-var",
        "a2",
        "a2-0-vllm",
        add_volume("/var/lib/models", "/models", False),
        "vllm-host-system-dirs-writable",
    ),
    ("data-below-home", "a2", "a2-1-vllm", add_volume("/home/ai/cache", "/cache", True), "vllm-host-system-dirs"),
    (
        "weights-below-root-cache",
        "a3",
        "a3-0-vllm",
        _weights_at(f"{WEIGHTS_MOUNT}/modelscope"),
        "vllm-host-system-dirs-writable",
    ),
    ("weights-on-a-data-disk", "a2", "a2-1-vllm", _weights_at("/data/models"), "vllm-host-system-dirs-writable"),
    (
        "driver-below-host-root",
        "a2",
        "a2-0-vllm",
        add_volume("/srv/sim/etc/hccn.conf", "/etc/hccn.conf", True),
        "vllm-host-system-dirs",
    ),
    (
        "api-key-as-secret-env",
        "a2",
        "a2-0-vllm",
        set_env("VLLM_API_KEY", "sk-live-0123456789abcdefghij"),
        "vllm-no-secrets-on-command-line",
    ),
    ("hf-token-switch", "a3", "a3-0-vllm", set_flag("--hf-token"), "vllm-no-secrets-on-command-line"),
    (
        "token-words-that-are-not-credentials",
        "a3",
        "a3-0-vllm",
        both(
            set_flag("--max-num-batched-tokens", "8192"),
            set_flag("--ssl-keyfile", "/certs/key.pem"),
            set_flag("--tokenizer", "deepseek-ai/DeepSeek-R1"),
        ),
        "vllm-no-secrets-on-command-line",
    ),
    (
        "token-thresholds",
        "a3",
        "a3-0-vllm",
        both(set_flag("--long-prefill-token-threshold", "2048"), set_flag("--dbo-decode-token-threshold", "32")),
        "vllm-no-secrets-on-command-line",
    ),
    (
        "interfaces-renamed-together",
        "a2",
        "a2-1-vllm",
        both(*[set_env(n, "ens1f0") for n in NIC_ENV]),
        "vllm-node-network-env",
    ),
    ("docker-host-by-name", "a2", "a2-1-docker", set_input("host", "ssh://root@a2-1.example"), "vllm-node-network-env"),
]


@pytest.mark.parametrize(
    "stack, resource, change, policy", [n[1:] for n in NEAR_MISSES], ids=[n[0] for n in NEAR_MISSES]
)
def test_near_miss_passes(stack, resource, change, policy):
    found = run(mutate(graph(stack), resource, change), only=policy)
    assert found == []


def test_every_policy_has_a_violation_and_a_near_miss():
    names = {p.name for p in policies.POLICIES}
    violated = {v[4] for v in VIOLATIONS} | {"remote-command-host-key-pinned"}
    near = {n[4] for n in NEAR_MISSES} | {"remote-command-host-key-pinned"}
    assert violated == names and near == names


def test_config_tightens_thresholds():
    g = graph("a3")
    config = {
        "vllm-shm-size": {"minShmMiB": 2048},
        "vllm-w8a8-serve-flags": {"maxGpuMemoryUtilization": 0.9},
    }
    found = run(g, config=config)
    assert messages(found, "vllm-shm-size") == [
        "node a3-0: shmSize is 1024 MiB, below 2048 MiB; vllm's workers need more shared memory: set "
        "container.shmSize to at least 2048 MiB (e.g. 1g)"
    ]
    assert messages(found, "vllm-w8a8-serve-flags") == [
        "node a3-0: --gpu-memory-utilization 0.92 is outside (0, 0.9]; the NPU runtime and HCCL buffers "
        "need the rest: set serve.gpuMemoryUtilization to e.g. 0.92"
    ]


# --- one data-parallel group, one image -----------------------------------------------------------


def _new_reference_at_preview():
    """a2-1's image changed to v0.17.0: pulled only at `pulumi up`, so its container's image id is unknown."""
    g = mutate(graph("a2"), "a2-1-image", set_input("name", IMAGE.replace("v0.18.0", "v0.17.0")))
    return mutate(g, "a2-1-vllm", set_input("image", UNKNOWN_STRING_VALUE))


def test_a_new_image_reference_on_one_node_is_reported_at_preview():
    g = _new_reference_at_preview()
    assert [(v.policy, v.message, v.urn) for v in run(g)] == [
        (
            "vllm-dp-group-one-image",
            f"nodes a2-0 and a2-1 of one data-parallel group run different images ({IMAGE} (id eabe4e976d71) on "
            f"a2-0, {IMAGE.replace('v0.18.0', 'v0.17.0')} on a2-1): {ONE_IMAGE_FIX}",
            named(g, "a2-1-vllm").urn,
        )
    ]


def test_a_group_with_one_odd_node_is_reported_once_naming_every_node():
    g = mutate(graph("a2", nodes=3), "a2-1-vllm", set_input("image", REPUSHED_ID))
    assert [(v.policy, v.message, v.urn) for v in run(g)] == [
        (
            "vllm-dp-group-one-image",
            f"nodes a2-0, a2-1 and a2-2 of one data-parallel group run different images ({IMAGE} (id "
            f"eabe4e976d71) on a2-0 and a2-2, {IMAGE} (id 0f1e2d3c4b5a) on a2-1): {ONE_IMAGE_FIX}",
            named(g, "a2-1-vllm").urn,
        )
    ]


def test_the_readme_shows_the_group_image_messages():
    readme = (POLICY_DIR / "README.md").read_text()
    pushed_again = mutate(graph("a2"), "a2-1-vllm", set_input("image", REPUSHED_ID))
    for g in (pushed_again, _new_reference_at_preview()):
        [found] = run(g, only="vllm-dp-group-one-image")
        assert f"`{found.message}`" in readme


def test_a_credential_on_one_node_is_no_model_flag_difference():
    token = "hf_" + "c" * 34
    g = mutate(graph("a2"), "a2-0-vllm", set_flag("--hf_token", token))
    assert [(v.policy, v.message) for v in run(g)] == [
        (
            "vllm-no-secrets-on-command-line",
            "node a2-0: --hf_token passes a credential on the vllm serve command line, where `docker inspect`, `ps` "
            "on the node and the Pulumi state show it in plain text; remove it and set `pulumi config set --secret "
            "hfToken <value>`: the container gets it as HF_TOKEN, which vllm reads like --hf-token",
        )
    ]


# --- remote commands (none in the program yet: synthetic resources) -------------------------------


def _command(connection) -> Node:
    return Node(
        "command:remote:Command",
        "a2-0-prepare",
        "urn:pulumi:a2::deepseek-r1-ascend::command:remote:Command::a2-0-prepare",
        {"connection": connection, "create": "npu-smi info"},
    )


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq4"


@pytest.mark.parametrize(
    "connection, expected",
    [
        (
            {"host": "192.0.2.11", "user": "root"},
            [
                "node 192.0.2.11 (a2-0-prepare): connection.hostKey is not set, so the command trusts any "
                "machine answering at 192.0.2.11; pin it with connection.hostKey (the output of "
                "`ssh-keyscan -t ed25519 192.0.2.11`, without the host name)"
            ],
        ),
        ({"host": "192.0.2.11", "user": "root", "hostKey": "  "}, 1),
        (
            {"host": "192.0.2.11", "hostKey": HOST_KEY, "proxy": {"host": "192.0.2.1"}},
            [
                "node 192.0.2.1 (a2-0-prepare): connection.proxy.hostKey is not set, so the command trusts "
                "any machine answering at 192.0.2.1; pin it with connection.proxy.hostKey (the output of "
                "`ssh-keyscan -t ed25519 192.0.2.1`, without the host name)"
            ],
        ),
        ({"host": "192.0.2.11", "user": "root", "hostKey": HOST_KEY}, []),
        ({"host": "192.0.2.11", "hostKey": HOST_KEY, "proxy": {"host": "192.0.2.1", "hostKey": HOST_KEY}}, []),
        ({"host": "192.0.2.11", "hostKey": UNKNOWN_STRING_VALUE}, []),
        (UNKNOWN_STRING_VALUE, []),
        ({"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": {"host": "h"}}, 1),
    ],
    ids=[
        "no-key",
        "blank-key",
        "proxy-no-key",
        "pinned",
        "proxy-pinned",
        "key-unknown",
        "connection-unknown",
        "secret",
    ],
)
def test_remote_command_host_key(connection, expected):
    found = messages(run([_command(connection)]), "remote-command-host-key-pinned")
    if isinstance(expected, int):
        assert len(found) == expected and all(m.startswith("node ") for m in found)
    else:
        assert found == expected


def test_steps_name_each_node_without_a_pinned_host_key():
    nodes = {"a2-0": {"host": "192.0.2.11", "hostKey": HOST_KEY}, "a2-1": {"host": "192.0.2.12", "hostKey": None}}
    step = Node(
        "command:local:Command", "a2-1-check-npu-tls", "urn:x", {"environment": {"NODE_SSH": json.dumps(nodes)}}
    )
    assert messages(run([step]), "remote-command-host-key-pinned") == [
        "node a2-1 (a2-1-check-npu-tls): its hostKey is not set, so the step trusts any machine answering at "
        "192.0.2.12; pin it with nodes[i].hostKey (the output of `ssh-keyscan -t ed25519 192.0.2.12`, without "
        "the host name)"
    ]
    local = Node("command:local:Command", "x", "urn:y", {"environment": {"NODE_SSH": json.dumps({"a2-0": None})}})
    assert run([local], only="remote-command-host-key-pinned") == []


def test_remote_command_types_covered():
    for type_ in ("command:remote:CopyToRemote", "command:remote:CopyFile"):
        node = _command({"host": "192.0.2.12"})
        node.type = type_
        assert len(run([node], only="remote-command-host-key-pinned")) == 1
    node = _command({"host": "192.0.2.12"})
    node.type = "command:local:Command"
    assert run([node], only="remote-command-host-key-pinned") == []


# --- unknown values at preview ------------------------------------------------------------------

_SENTINEL_FOR = {
    bool: UNKNOWN_BOOLEAN_VALUE,
    float: UNKNOWN_NUMBER_VALUE,
    int: UNKNOWN_NUMBER_VALUE,
    list: UNKNOWN_ARRAY_VALUE,
}


def _unknown_variants(g: list[Node]):
    """(label, graph) with one input, or one element of a list input, unknown."""
    for node in g:
        if node.type not in (policies.CONTAINER, policies.REMOTE_IMAGE):
            continue
        for key, value in node.inputs.items():
            sentinel = _SENTINEL_FOR.get(type(value), UNKNOWN_STRING_VALUE)
            yield f"{node.name}.{key}", mutate(g, node.name, set_input(key, sentinel))
            if isinstance(value, list) and value:
                for index in {0, len(value) // 2, len(value) - 1}:

                    def change(inputs, key=key, index=index):
                        inputs[key][index] = UNKNOWN_STRING_VALUE

                    yield f"{node.name}.{key}[{index}]", mutate(g, node.name, change)
                    if isinstance(value[index], dict):
                        for inner in value[index]:

                            def change_inner(inputs, key=key, index=index, inner=inner):
                                inputs[key][index][inner] = UNKNOWN_STRING_VALUE

                            yield f"{node.name}.{key}[{index}].{inner}", mutate(g, node.name, change_inner)


@pytest.mark.parametrize("stack", (*SHIPPED, "local"))
def test_unknown_values_never_crash_or_report(stack):
    checked = 0
    for label, variant in _unknown_variants(graph(stack)):
        found = run(variant)
        # An unknown value may hide a problem until `pulumi up`, never invent one.
        assert found == [], (label, found)
        checked += 1
    assert checked > 40


def test_whole_props_unknown_or_malformed_do_not_crash():
    g = graph("a2")
    for node in g:
        if node.type == policies.CONTAINER:
            node.inputs = {"command": ["vllm", "serve", 3, None], "devices": "x", "volumes": 7, "labels": [1]}
    run(g)
    for node in g:
        if node.type == policies.CONTAINER:
            node.inputs = {}
    run(g)


@pytest.mark.parametrize("case", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_resource_order_does_not_matter(case):
    # The engine sends resources in registration order, which differs between runs.
    _, stack, resource, change, _, _ = case
    g = mutate(graph(stack), resource, change)
    forward = sorted((v.policy, v.message, v.urn) for v in run(g))
    backward = sorted((v.policy, v.message, v.urn) for v in run(list(reversed(g))))
    assert forward == backward
