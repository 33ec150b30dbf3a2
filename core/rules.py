"""Rules across keys and nodes: topology, unique names and addresses, settings that depend on others."""

from __future__ import annotations

import ipaddress

from .defaults import (
    ACCURACY_MIN_MODEL_LEN,
    AUTO_NIC,
    NETWORK_ENV,
    SECRET_ENV,
    SECRET_KEYS,
    WEIGHTS_MOUNT,
)
from .flags import extra_args_problems
from .images import image_reference_problem
from .models import ClusterConfig, camel_path, to_snake
from .supervision import UNSPECIFIED_HOSTS


def topology_problems(cfg: ClusterConfig) -> list[str]:
    problems = []
    hw, serve, nodes = cfg.hardware, cfg.serve, cfg.nodes
    count = len(nodes)
    npus = hw.npus * count
    tp, dp = serve.tensor_parallel_size, serve.data_parallel_size
    where = f"{count} {hw.name} node{'s have' if count > 1 else ' has'}"
    if tp * dp != npus:
        options = ", ".join(
            f"dataParallelSize {npus // t} x tensorParallelSize {t}"
            for t in (1, 2, 4, 8, 16)
            if npus % t == 0 and (npus // t) % count == 0 and t <= hw.npus
        )
        problems.append(
            f"serve.tensorParallelSize: tensorParallelSize {tp} x dataParallelSize {dp} = {tp * dp} NPUs, "
            f"but {where} {npus}; every NPU must hold one rank, e.g. {options}"
        )
    if dp % count:
        problems.append(
            f"serve.dataParallelSize: {dp} data-parallel ranks do not divide evenly over {count} nodes; "
            f"use a multiple of {count}"
        )
    if hw.hbm_gb * count < cfg.model.required_hbm_gb:
        needed = -(-cfg.model.required_hbm_gb // hw.hbm_gb)
        problems.append(
            f"nodes: {where} {hw.hbm_gb * count} GB of NPU memory, but {cfg.model.name} needs "
            f"{cfg.model.required_hbm_gb} GB (model.requiredHbmGb); use at least {needed} {hw.name} nodes"
        )
    if serve.port == serve.data_parallel_rpc_port:
        problems.append(
            f"serve.dataParallelRpcPort: {serve.data_parallel_rpc_port} is also serve.port; "
            "the API and the data-parallel RPC need distinct ports"
        )
    port = cfg.supervision.metrics_port
    if cfg.supervision.enabled and port in (serve.port, serve.data_parallel_rpc_port):
        taken = "serve.port" if port == serve.port else "serve.dataParallelRpcPort"
        problems.append(
            f"supervision.metricsPort: {port} is also {taken}; the supervisor needs a port of its own on every node"
        )
    return problems + supervision_problems(cfg)


def supervision_problems(cfg: ClusterConfig) -> list[str]:
    """Settings under which the supervisors would watch, or stop, vllm where it is not."""
    problems = []
    sup, host, nodes = cfg.supervision, cfg.api_host, cfg.nodes
    if not sup.enabled:
        return problems
    head = nodes[0].ip
    if len(nodes) > 1 and ":" in head and host == "0.0.0.0":
        problems.append(
            f"serve.host: 0.0.0.0 listens on IPv4 only, but the nodes' addresses are IPv6; the other nodes' "
            f'supervisors watch the head at {head}: use "::"'
        )
    elif len(nodes) > 1 and host not in UNSPECIFIED_HOSTS and host != head:
        problems.append(
            f"serve.host: vllm would listen on {host} only, where the other nodes' supervisors cannot watch the "
            f"head; leave serve.host unset (the head's own address {head}, behind the front door), or use "
            '"0.0.0.0" (or "::")'
        )
    if cfg.container.stop_grace_seconds <= sup.stop_timeout_seconds:
        problems.append(
            f"container.stopGraceSeconds: {cfg.container.stop_grace_seconds}s leaves the supervisor no time to stop "
            f"vllm (supervision.stopTimeoutSeconds is {sup.stop_timeout_seconds}s); use more than "
            f"{sup.stop_timeout_seconds}"
        )
    return problems


def node_problems(cfg: ClusterConfig, invalid: frozenset[str] = frozenset()) -> list[str]:
    """Unique names, addresses and devices across nodes. Fields in `invalid` (paths such as
    nodes[1].ip) failed their own check and are left out, so the others are still judged."""
    problems = []
    first_seen: dict[tuple[str, str], int] = {}
    valid_ips = [(i, ipaddress.ip_address(n.ip)) for i, n in enumerate(cfg.nodes) if f"nodes[{i}].ip" not in invalid]
    for i, node in enumerate(cfg.nodes):
        bad = {
            key for key in ("name", "ip", "dockerHost", "containerName", "hostRoot") if f"nodes[{i}].{key}" in invalid
        }
        # Which Docker engine a node uses is unknown when its address or dockerHost is invalid.
        engine_known = not ({"dockerHost"} & bad or ("ip" in bad and not node.docker_host))
        docker = cfg.docker_url(node)
        # Two nodes on one Docker host must not claim the same NPUs or the same container name.
        for key, value, shown, what, judged in (
            ("name", node.name, node.name, "node names", True),
            ("ip", node.ip, node.ip, "node addresses", True),
            (
                "containerName",
                (docker, node.container_name),
                node.container_name,
                "container names on one Docker host",
                engine_known,
            ),
            ("hostRoot", (docker, node.host_root), node.host_root, "NPU devices on one Docker host", engine_known),
        ):
            if key in bad or not judged:
                continue
            j = first_seen.setdefault((key, str(value)), i)
            if j != i:
                problems.append(f"nodes[{i}].{key}: '{shown}' is also nodes[{j}].{key}; {what} must be unique")
        if "ip" not in bad:
            problems += _address_problems(i, node.ip, docker, valid_ips[0])
    return problems + _rename_problems(cfg, invalid)


def _address_problems(
    i: int, ip: str, docker: str, reference: tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> list[str]:
    address = ipaddress.ip_address(ip)
    problems = []
    if address.is_unspecified:
        problems.append(f"nodes[{i}].ip: {ip} is no node's address; use the address of its NIC")
    elif address.is_loopback and not docker.startswith("unix://"):
        problems.append(
            f"nodes[{i}].ip: {ip} is a loopback address, which other nodes cannot reach; "
            "use the address of the node's NIC (loopback only suits nodes on this machine's Docker)"
        )
    first, first_address = reference
    if address.version != first_address.version:
        problems.append(
            f"nodes[{i}].ip: {ip} is IPv{address.version} but nodes[{first}].ip is "
            f"IPv{first_address.version}; a DP group uses one address family"
        )
    return problems


def _rename_problems(cfg: ClusterConfig, invalid: frozenset[str]) -> list[str]:
    """A former name hands its resources to exactly one node, and no node still has it."""
    problems = []
    names = {n.name: i for i, n in enumerate(cfg.nodes) if f"nodes[{i}].name" not in invalid}
    claimed: dict[str, int] = {}
    for i, node in enumerate(cfg.nodes):
        old = node.renamed_from
        if old is None or f"nodes[{i}].renamedFrom" in invalid:
            continue
        j = names.get(old, claimed.get(old))
        if j == i:
            problems.append(f"nodes[{i}].renamedFrom: '{old}' is the node's own name; remove renamedFrom")
        elif old in names:
            problems.append(
                f"nodes[{i}].renamedFrom: '{old}' is nodes[{j}].name; only a name no node has any more can be taken over"
            )
        elif j is not None:
            problems.append(
                f"nodes[{i}].renamedFrom: '{old}' is also nodes[{j}].renamedFrom; one former node becomes one node"
            )
        claimed.setdefault(old, i)
    return problems


def setting_problems(cfg: ClusterConfig, secret_keys: frozenset[str]) -> list[str]:
    problems = []
    if cfg.accuracy.enabled and not cfg.accuracy.tokenizer:
        problems.append(
            "accuracy.tokenizer: required when accuracy.enabled is true; the model's directory inside the "
            f"container, e.g. {WEIGHTS_MOUNT}/modelscope/hub/models/{cfg.model.name}"
        )
    if cfg.accuracy.enabled and cfg.serve.max_model_len < ACCURACY_MIN_MODEL_LEN:
        problems.append(
            f"serve.maxModelLen: {cfg.serve.max_model_len} is too short for accuracy runs "
            f"(accuracy.enabled is true); set it to at least {ACCURACY_MIN_MODEL_LEN}"
        )
    derived = set(NETWORK_ENV) | set(SECRET_ENV.values()) | {"VLLM_USE_MODELSCOPE"}
    for section in ("single_node", "multi_node", "extra"):
        for name in getattr(cfg.env, section):
            if name in derived:
                source = {"VLLM_USE_MODELSCOPE": "model.useModelscope"}.get(
                    name,
                    next((k for k, v in SECRET_ENV.items() if v == name), "each node's ip and nic"),
                )
                problems.append(f"{camel_path('env', section)}.{name}: set from {source}; remove it here")
    problems += extra_args_problems(cfg, secret_keys)
    for i, node in enumerate(cfg.nodes):
        if node.nic == AUTO_NIC and not cfg.preflight.enabled:
            problems.append(
                f"nodes[{i}].nic: auto is discovered by the preflight, which preflight.enabled turns off; "
                "set the NIC name or enable the preflight"
            )
    for key in SECRET_KEYS:
        if getattr(cfg, to_snake(key)) is not None and key not in secret_keys:
            problems.append(f"{key}: stored in plain text; set it with `pulumi config set --secret {key} <value>`")
    return problems


def _serving_ports(cfg: ClusterConfig) -> dict[str, int]:
    """The ports vllm and its supervisor take on every node, by config key."""
    return {
        "serve.port": cfg.serve.port,
        "serve.dataParallelRpcPort": cfg.serve.data_parallel_rpc_port,
        **({"supervision.metricsPort": cfg.supervision.metrics_port} if cfg.supervision.enabled else {}),
    }


def front_door_problems(cfg: ClusterConfig) -> list[str]:
    """The front door shares the head's host network with vllm and its supervisor."""
    door = cfg.front_door
    if not door.enabled:
        return []
    taken = next((key for key, port in _serving_ports(cfg).items() if port == door.port), None)
    if taken is None:
        return []
    return [
        f"frontDoor.port: {door.port} is also {taken}; the front door needs a port of its own on the head node, "
        "such as 8080"
    ]


def observability_problems(cfg: ClusterConfig) -> list[str]:
    obs = cfg.observability
    if not obs.enabled:
        return []
    problems = []
    names = [n.name for n in cfg.nodes]
    if obs.node is not None and obs.node not in names:
        problems.append(f"observability.node: '{obs.node}' is not a node; use one of {', '.join(names)}")
    if obs.grafana.enabled and cfg.grafana_admin_password is None:
        problems.append(
            "grafanaAdminPassword: required when observability.grafana.enabled is true; set it with "
            "`pulumi config set --secret grafanaAdminPassword <password>`, or disable Grafana"
        )
    # Every container runs on the host network, so all of these share the Prometheus node's ports.
    on_head = obs.node in (None, cfg.nodes[0].name)
    ports = {
        **_serving_ports(cfg),
        **({"frontDoor.port": cfg.front_door.port} if cfg.front_door.enabled and on_head else {}),
        "observability.prometheus.port": obs.prometheus.port,
    }
    if obs.grafana.enabled:
        ports["observability.grafana.port"] = obs.grafana.port
    if obs.npu_exporter.image:
        ports["observability.npuExporter.port"] = obs.npu_exporter.port
    taken: dict[int, str] = {}
    for key, port in ports.items():
        if port in taken and key.startswith("observability."):
            problems.append(f"{key}: {port} is also {taken[port]}; every service on a node needs its own port")
        taken.setdefault(port, key)
    return problems


def composed_image_problems(cfg: ClusterConfig) -> list[str]:
    """image.registry, repository and tag each parse; the reference they compose must parse too."""
    if cfg.image.ref:
        return []
    reference = cfg.image.reference(cfg.hardware)
    problem = image_reference_problem(reference)
    return [f"image: registry, repository and tag compose {problem}"] if problem else []
