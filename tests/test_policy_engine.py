"""The pack behind pulumi-policy's analyzer service, fed gRPC requests as `pulumi preview` sends
them: policy metadata, per-policy enforcement levels from the pack config, and unknown values."""

from __future__ import annotations

import copy

import pytest
from google.protobuf import json_format, struct_pb2
from mocked import run_program, stack_settings
from policy_harness import graph_of, mutate, policies, set_flag, set_input
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

LEVEL = {proto.ADVISORY: "advisory", proto.MANDATORY: "mandatory", proto.DISABLED: "disabled"}


def _servicer() -> _PolicyAnalyzerServicer:
    return _PolicyAnalyzerServicer("deepseek-r1-ascend", "0.0.1", policies.POLICIES, EnforcementLevel.MANDATORY)


def _struct(inputs: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(copy.deepcopy(inputs), struct_pb2.Struct())


def _provider(node, graph) -> proto.AnalyzerProviderResource | None:
    provider = next((p for p in graph if node.provider and p.urn == node.provider), None)
    if provider is None:
        return None
    return proto.AnalyzerProviderResource(
        type=provider.type, properties=_struct(provider.inputs), urn=provider.urn, name=provider.name
    )


def _analyze_all(servicer, graph) -> list:
    diagnostics = []
    for node in graph:
        request = proto.AnalyzeRequest(
            type=node.type,
            properties=_struct(node.inputs),
            urn=node.urn,
            name=node.name,
            provider=_provider(node, graph),
        )
        diagnostics += servicer.Analyze(request, None).diagnostics
    resources = [
        proto.AnalyzerResource(
            type=node.type,
            properties=_struct(node.inputs),
            urn=node.urn,
            name=node.name,
            parent=node.parent,
            dependencies=list(node.dependencies),
            provider=_provider(node, graph),
        )
        for node in graph
    ]
    diagnostics += servicer.AnalyzeStack(proto.AnalyzeStackRequest(resources=resources), None).diagnostics
    return list(diagnostics)


@pytest.fixture(scope="module")
def a2():
    settings = {**stack_settings("a2"), "apiKey": "k"}
    for node in settings["nodes"]:
        node["hostKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEngineTestHostKey"
    return graph_of(run_program(settings, stack="a2", secret_keys=("apiKey",)))


def test_analyzer_info_lists_policies_levels_and_config_schema():
    info = _servicer().GetAnalyzerInfo(None, None)
    levels = {p.name: LEVEL[p.enforcementLevel] for p in info.policies}
    assert levels == {p.name: p.enforcement_level.value for p in policies.POLICIES}
    assert levels["vllm-api-key-on-open-api"] == "advisory"
    assert levels["remote-command-host-key-pinned"] == "advisory"
    schemas = {p.name: json_format.MessageToDict(p.configSchema) for p in info.policies}
    assert schemas["vllm-shm-size"]["properties"]["minShmMiB"]["default"] == 1024
    assert schemas["vllm-w8a8-serve-flags"]["properties"]["maxGpuMemoryUtilization"]["default"] == 0.95
    assert schemas["vllm-container-privileges"]["properties"]["allowedCapabilities"]["default"] == {}
    assert schemas["vllm-container-privileges"]["properties"]["hostUsernsReason"]["default"] == ""
    assert schemas["vllm-container-host-isolation"]["properties"]["privilegedImages"]["default"] == {}


def test_shipped_graph_has_no_diagnostics(a2):
    assert _analyze_all(_servicer(), a2) == []


def _configured(policy: str, level: int, **properties) -> _PolicyAnalyzerServicer:
    servicer = _servicer()
    config = proto.PolicyConfig(enforcementLevel=level)
    config.properties.update(properties)
    servicer.Configure(proto.ConfigureAnalyzerRequest(policyConfig={policy: config}), None)
    return servicer


def test_enforcement_level_comes_from_the_pack_config(a2):
    broken = mutate(a2, "a2-1-vllm", set_flag("--data-parallel-start-rank", "1"))
    expected = (
        "node a2-1: --data-parallel-start-rank 1 overlaps ranks 0-1 of node a2-0; "
        "set start ranks to node index x data-parallel-size-local (0, 2, ...)"
    )
    default = _analyze_all(_servicer(), broken)
    assert {(d.policyName, LEVEL[d.enforcementLevel]) for d in default} == {("vllm-dp-group-consistent", "mandatory")}
    assert any(d.message.endswith("\n" + expected) and d.urn.endswith("::a2-1-vllm") for d in default)

    advisory = _analyze_all(_configured("vllm-dp-group-consistent", proto.ADVISORY), broken)
    assert {LEVEL[d.enforcementLevel] for d in advisory} == {"advisory"}
    assert _analyze_all(_configured("vllm-dp-group-consistent", proto.DISABLED), broken) == []


def test_policy_settings_come_from_the_pack_config(a2):
    servicer = _configured("vllm-shm-size", proto.MANDATORY, minShmMiB=4096)
    found = [d.message for d in _analyze_all(servicer, a2)]
    assert len(found) == 2 and all("below 4096 MiB" in m for m in found)


def test_an_allowed_capability_comes_from_the_pack_config(a2):
    broken = mutate(a2, "a2-0-vllm", set_input("capabilities", {"adds": ["SYS_PTRACE"]}))
    assert [d.policyName for d in _analyze_all(_servicer(), broken)] == ["vllm-container-privileges"]
    allowed = {"SYS_PTRACE": "py-spy profiling"}
    servicer = _configured("vllm-container-privileges", proto.MANDATORY, allowedCapabilities=allowed)
    assert _analyze_all(servicer, broken) == []


def test_the_docker_host_reaches_the_stack_policies(a2):
    # The engine hands each resource's provider along: the node's address comes from there.
    broken = mutate(a2, "a2-1-docker", set_input("host", "ssh://root@192.0.2.13"))
    found = _analyze_all(_servicer(), broken)
    assert [d.policyName for d in found] == ["vllm-node-network-env"]
    assert "HCCL_IF_IP 192.0.2.12 is not 192.0.2.13" in found[0].message and found[0].urn.endswith("::a2-1-vllm")


def test_unknown_values_do_not_stop_a_policy(a2):
    graph = copy.deepcopy(a2)
    for node in graph:
        if node.type == policies.CONTAINER:
            node.inputs["image"] = UNKNOWN_STRING_VALUE
            node.inputs["envs"]["value"][0] = UNKNOWN_STRING_VALUE
            node.inputs["labels"] = UNKNOWN_STRING_VALUE
        if node.type == policies.REMOTE_IMAGE:
            node.inputs["name"] = UNKNOWN_STRING_VALUE
    # No "can't run policy ... during preview" diagnostic: every policy ran to the end.
    assert _analyze_all(_servicer(), graph) == []
    broken = mutate(graph, "a2-1-vllm", set_flag("--data-parallel-start-rank", "1"))
    found = _analyze_all(_servicer(), broken)
    assert {d.policyName for d in found} == {"vllm-dp-group-consistent"}
    assert any("--data-parallel-start-rank 1 overlaps ranks 0-1 of node a2-0" in d.message for d in found)


def test_a_privileged_image_comes_from_the_pack_config(a2):
    # A container beside the nodes (an exporter) that must run privileged: allowed by its image id.
    image_id = "sha256:" + "5e" * 32
    exporter = copy.deepcopy(next(n for n in a2 if n.name == "a2-0-vllm"))
    exporter.name, exporter.urn = "a2-0-exporter", exporter.urn.replace("a2-0-vllm", "a2-0-exporter")
    exporter.inputs = {"image": image_id, "command": ["npu-exporter"], "privileged": True}
    graph = [*a2, exporter]
    found = _analyze_all(_servicer(), graph)
    assert [d.policyName for d in found] == ["vllm-container-host-isolation"]
    assert "privilegedImages" in found[0].message
    allowed = {image_id: "reads every chip through the driver"}
    servicer = _configured("vllm-container-host-isolation", proto.MANDATORY, privilegedImages=allowed)
    assert _analyze_all(servicer, graph) == []
