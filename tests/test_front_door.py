"""The front door: what it passes, where it and vllm listen, its key, and the config that refuses
a front door that cannot work. Its behaviour on a real proxy is tests/integration/test_api_key_at_the_front_door.py."""

import pytest
from mocked import run_program, stack_settings

from core.config import ConfigError, load_config
from core.deployment import plan_deployment
from core.front_door import CONFIG_FILE


def planned(stack="a2", **changes):
    raw = {**stack_settings(stack), **changes}
    secret = frozenset({"apiKey"} & changes.keys())
    return plan_deployment(load_config(raw, secret_keys=secret), stack=stack)


def problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load_config(raw)
    return error.value.problems


def config_text(deployment) -> str:
    (upload,) = deployment.front_door.uploads
    assert upload.path == CONFIG_FILE
    return upload.content


def test_by_default_vllm_listens_on_the_heads_cluster_address_and_clients_reach_the_front_door():
    deployment = planned()
    plan, door = deployment.cluster, deployment.front_door
    assert [n.argv[n.argv.index("--host") + 1] for n in plan.nodes] == ["192.0.2.11", "192.0.2.11"]
    assert (door.node, door.name, door.role) == ("a2-0", "vllm-ascend-front-door", "front-door")
    assert door.image == "m.daocloud.io/docker.io/library/haproxy:2.6.22"
    assert door.argv == ("haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg")
    assert (door.devices, door.mounts) == ((), ())
    assert plan.endpoint == "http://192.0.2.11:8080/v1"
    assert plan.client_local_url == "http://127.0.0.1:8080"
    text = config_text(deployment)
    assert "    bind 0.0.0.0:8080\n" in text
    assert "    server backend 192.0.2.11:8000 check inter 2s\n" in text
    assert "unless { path_beg /v1/ } || { path /health }" in text


def test_with_a_key_the_front_door_checks_it_and_its_configuration_never_holds_it():
    deployment = planned(apiKey="s3cret-front-door-key")
    door = deployment.front_door
    assert door.env == (("VLLM_API_KEY", "s3cret-front-door-key"),)
    assert door.secret_env == frozenset({"VLLM_API_KEY"})
    text = config_text(deployment)
    assert '!{ req.hdr(authorization) -m str "Bearer ${VLLM_API_KEY}" }' in text
    assert "s3cret-front-door-key" not in text


def test_without_a_key_the_front_door_still_refuses_every_route_but_v1_and_health():
    deployment = planned()
    assert deployment.front_door.env == ()
    text = config_text(deployment)
    assert "authorization" not in text and "path_beg /v1/" in text


def test_a_public_address_apart_from_the_cluster_nic_is_the_endpoint():
    deployment = planned(frontDoor={"listenAddress": "203.0.113.7", "port": 443})
    assert deployment.cluster.endpoint == "http://203.0.113.7:443/v1"
    assert deployment.cluster.client_local_url == "http://203.0.113.7:443"
    assert "    bind 203.0.113.7:443\n" in config_text(deployment)


def test_ipv6_nodes_get_bracketed_addresses_everywhere():
    nodes = [
        {"name": "a2-0", "ip": "2001:db8::11", "nic": "eth0"},
        {"name": "a2-1", "ip": "2001:db8::12", "nic": "eth0"},
    ]
    deployment = planned(nodes=nodes, frontDoor={"listenAddress": "::"})
    assert deployment.cluster.endpoint == "http://[2001:db8::11]:8080/v1"
    assert "    bind [::]:8080\n" in config_text(deployment)
    assert "    server backend [2001:db8::11]:8000 check" in config_text(deployment)


def test_without_the_front_door_clients_reach_vllm_on_every_interface_as_in_the_tutorial():
    deployment = planned(frontDoor={"enabled": False})
    assert deployment.front_door is None
    assert deployment.cluster.endpoint == "http://192.0.2.11:8000/v1"
    assert deployment.cluster.head.argv[3:5] == ("--host", "0.0.0.0")


def test_an_explicit_serve_host_wins():
    deployment = planned(serve={"host": "0.0.0.0"})
    assert deployment.cluster.head.argv[3:5] == ("--host", "0.0.0.0")
    # The front door then reaches vllm on the head itself.
    assert "    server backend 127.0.0.1:8000 check" in config_text(deployment)


@pytest.mark.parametrize(
    ("front_door", "other", "problem"),
    [
        (
            {"port": 8000},
            {},
            "frontDoor.port: 8000 is also serve.port; the front door needs a port of its own on the head node, "
            "such as 8080",
        ),
        (
            {"port": 9401},
            {},
            "frontDoor.port: 9401 is also supervision.metricsPort; the front door needs a port of its own on the "
            "head node, such as 8080",
        ),
        (
            {},
            {"observability": {"enabled": True, "prometheus": {"port": 8080}, "grafana": {"enabled": False}}},
            "observability.prometheus.port: 8080 is also frontDoor.port; every service on a node needs its own port",
        ),
        (
            {"listenAddress": "fe80::1%eth0"},
            {},
            "frontDoor.listenAddress: 'fe80::1%eth0' has an IPv6 scope ID, which is not supported; use 0.0.0.0 "
            "(every interface) or one address of the head node, without '%...'",
        ),
        (
            {"listenAddress": "public"},
            {},
            "frontDoor.listenAddress: 'public' is not an IP address; use 0.0.0.0 (every interface) or one address "
            "of the head node",
        ),
        (
            {"image": "haproxy"},
            {},
            "frontDoor.image: 'haproxy' has no tag; pin a version tag such as :v0.18.0 or a @sha256: digest",
        ),
        (
            {"healthCheck": 2},
            {},
            "frontDoor.healthCheck: unknown key",
        ),
    ],
)
def test_a_front_door_that_cannot_work_is_refused_with_its_key(front_door, other, problem):
    found = problems({**stack_settings("a2"), "frontDoor": front_door, **other})
    assert any(p.startswith(problem) for p in found), found


def test_the_program_declares_the_front_door_on_the_head_with_its_key_secret():
    raw = stack_settings("a2") | {"apiKey": "front-door-program-key"}
    deployment = run_program(raw, stack="a2", secret_keys=("apiKey",))
    assert deployment.error is None
    door = deployment.named("a2-0-front-door")
    assert "::a2-0-docker::" in door.provider
    assert door.inputs["command"] == ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
    assert door.inputs["networkMode"] == "host" and not door.inputs.get("privileged")
    assert door.inputs["uploads"][0]["file"] == "/usr/local/etc/haproxy/haproxy.cfg"
    assert "envs" in door.secret_inputs
    assert door.inputs["envs"] == ["VLLM_API_KEY=front-door-program-key"]
    assert "front-door-program-key" not in repr(deployment.outputs)
    assert deployment.outputs["endpoint"] == "http://192.0.2.11:8080/v1"
