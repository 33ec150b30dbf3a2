"""The serving-container policies beyond the tables of test_policy.py: the local stack, settings
that state a reason, containers that are not vllm's, vllm behind a wrapper, addresses by value."""

from __future__ import annotations

import shlex

import pytest
from policy_harness import (
    Node,
    add_volume,
    both,
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
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE

from core.plan import NODE_LABEL, ROLE_LABEL, STACK_LABEL

PRIVILEGES = "vllm-container-privileges"


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_local_stack_passes_every_policy(preview):
    # Loopback addresses, a local Docker socket, and weights and fake drivers below /var/lib.
    assert run(graph("local", preview=preview)) == []


@pytest.mark.parametrize(
    "config, reported",
    [
        ({}, ["SYS_PTRACE"]),
        ({"allowedCapabilities": {"SYS_PTRACE": "py-spy profiling of stuck ranks"}}, []),
        ({"allowedCapabilities": {"CAP_SYS_PTRACE": "py-spy"}}, []),
        ({"allowedCapabilities": {"SYS_PTRACE": "  "}}, ["SYS_PTRACE"]),
        ({"allowedCapabilities": {"NET_ADMIN": "tc shaping"}}, ["SYS_PTRACE"]),
    ],
    ids=["none", "stated", "cap-prefix", "blank-reason", "another-capability"],
)
def test_a_capability_needs_a_stated_reason(config, reported):
    g = mutate(graph("a2"), "a2-0-vllm", set_input("capabilities", {"adds": ["SYS_PTRACE"]}))
    found = messages(run(g, config={PRIVILEGES: config}), PRIVILEGES)
    assert [m.split("capabilities.adds ")[1].split(" ")[0] for m in found] == reported


def test_host_namespaces_need_their_own_reason():
    g = mutate(graph("a3"), "a3-0-vllm", both(set_input("pidMode", "host"), set_input("ipcMode", "host")))
    found = messages(run(g, config={PRIVILEGES: {"hostPidReason": "node-exporter-style process metrics"}}), PRIVILEGES)
    assert len(found) == 1 and found[0].startswith("node a3-0: ipcMode 'host' ")


def _other_container(name: str, inputs: dict) -> Node:
    urn = f"urn:pulumi:a2::deepseek-r1-ascend::docker:index/container:Container::{name}"
    return Node(policies.CONTAINER, name, urn, inputs)


def test_containers_that_are_not_vllm_are_checked_too():
    # What an observability stack adds beside the nodes: exporters reading host directories with a
    # capability and the host's PID namespace, and a dashboard with a token on its command line.
    # Isolation and credentials do not depend on what a container runs: each is reported, worded
    # for a container that is not vllm's (the fix says what it needs, not what vllm needs).
    def exporter(node: str, command) -> dict:
        return {
            "image": "quay.io/prometheus/node-exporter:v1.8.2",
            "command": command,
            "capabilities": {"adds": ["SYS_TIME"]},
            "pidMode": "host",
            "volumes": [{"hostPath": "/proc", "containerPath": "/host/proc", "readOnly": True}],
            "labels": [
                {"label": STACK_LABEL, "value": "a2"},
                {"label": NODE_LABEL, "value": node},
                {"label": ROLE_LABEL, "value": "exporter"},
            ],
        }

    dashboard = {
        "image": "grafana/grafana:11.2.0",
        "command": ["grafana", "server", "--api-key", "glsa_0123456789abcdef"],
        "mounts": [{"type": "bind", "source": "/var/lib/grafana", "target": "/var/lib/grafana"}],
        "envs": ["HCCL_IF_IP=192.0.2.11"],
    }
    g = graph("a2") + [
        _other_container("a2-0-node-exporter", exporter("a2-0", ["--path.rootfs=/host"])),
        _other_container("grafana", dashboard),
        # At preview an added container's command may be unknown: it is checked all the same.
        _other_container("a2-1-node-exporter", exporter("a2-1", UNKNOWN_ARRAY_VALUE)),
    ]
    found = sorted((v.policy, v.message) for v in run(g))
    expected = []
    for node in ("a2-0", "a2-1"):
        who = f"node {node} ({node}-node-exporter)"
        expected += [
            (
                PRIVILEGES,
                f"{who}: capabilities.adds SYS_TIME gives the container a host privilege beyond Docker's defaults; "
                'remove it, or state why in the pack config: "vllm-container-privileges": {"allowedCapabilities": '
                '{"SYS_TIME": "<reason>"}}',
            ),
            (
                PRIVILEGES,
                f"{who}: pidMode 'host' puts the container in the host's PID namespace, so it can see, trace and "
                "signal every process on the host; remove pidMode, or state why in the pack config: "
                '"vllm-container-privileges": {"hostPidReason": "<reason>"}',
            ),
            (
                "vllm-host-system-dirs",
                f"{who}: host system directory /proc is mounted read-only at /host/proc, which shows the container "
                "the host's files (configuration, keys, other services' state); remove that volume, or mount only "
                "the files it needs from outside the system directories",
            ),
        ]
    expected.append(
        (
            "vllm-no-secrets-on-command-line",
            "node grafana: --api-key passes a credential on the container's command line, where `docker inspect`, "
            "`ps` on the node and the Pulumi state show it in plain text; remove it and hand the value to the "
            "container in a secret environment variable (its envs, as a Pulumi secret) or in a file it reads",
        )
    )
    assert found == sorted(expected)


def _wrapped(inputs):
    inputs["command"] = ["sh", "-c", "exec " + shlex.join(inputs["command"])]


def test_vllm_behind_a_wrapper_is_still_a_serving_container():
    g = mutate(graph("a2"), "a2-0-vllm", _wrapped)
    g = mutate(g, "a2-1-vllm", set_input("entrypoints", ["/usr/local/bin/supervise", "--"]))
    assert run(g) == []
    g = mutate(g, "a2-0-vllm", both(set_input("pidMode", "host"), add_volume("/etc", "/host/etc")))
    g = mutate(g, "a2-1-vllm", set_flag("--api-key", "sk-live-0123456789abcdefghij"))
    found = run(g)
    assert {(v.policy, v.message.split(":")[0]) for v in found} == {
        (PRIVILEGES, "node a2-0"),
        ("vllm-host-system-dirs-writable", "node a2-0"),
        ("vllm-no-secrets-on-command-line", "node a2-1"),
    }


def test_a_serving_container_is_known_by_its_role_label_at_preview():
    g = mutate(
        graph("a2"), "a2-1-vllm", both(set_input("command", UNKNOWN_ARRAY_VALUE), add_volume("/root", "/host-root"))
    )
    assert [v.policy for v in run(g)] == ["vllm-host-system-dirs-writable"]


@pytest.mark.parametrize(
    "flag, value",
    [("--api-key", "sk-live-0123456789abcdefghij"), ("--hf-token", "hf_" + "c" * 34), ("--db-password", "hunter2")],
)
def test_a_credential_never_appears_in_a_message(flag, value):
    found = run(mutate(graph("a3"), "a3-0-vllm", set_flag(flag, value)))
    assert messages(found, "vllm-no-secrets-on-command-line")
    assert not [v for v in found if value in v.message]


@pytest.mark.parametrize(
    "docker_ip, hccl_ip, reported",
    [("2001:db8::11", "2001:DB8:0:0::11", False), ("2001:db8::11", "2001:db8::12", True)],
    ids=["same-address", "other-address"],
)
def test_addresses_compare_by_value(docker_ip, hccl_ip, reported):
    g = mutate(graph("a3"), "a3-0-docker", set_input("host", f"ssh://root@[{docker_ip}]:22"))
    g = mutate(g, "a3-0-vllm", set_env("HCCL_IF_IP", hccl_ip))
    assert bool(run(g, only="vllm-node-network-env")) == reported


def test_node_network_reports_point_at_the_node():
    g = mutate(graph("local"), "sim-1-vllm", set_env("HCCL_IF_IP", "127.0.0.1"))
    found = run(g, only="vllm-node-network-env")
    assert [v.urn for v in found] == [named(g, "sim-1-vllm").urn]
