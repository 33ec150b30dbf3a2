"""The per-node deployment plan: pure data derived from a validated config.

Everything downstream (Pulumi resources, rendered scripts, outputs, checks) reads this plan,
so a flag, a device or an environment variable is decided once: here, or in the two parts the
plan composes, `serve` (a node's `vllm serve` argv and env) and `connection` (how the deploying
machine reaches a node).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, replace

from .config import (
    NETWORK_ENV,
    PROJECT,
    SECRET_ENV,
    WEIGHTS_MOUNT,
    Accuracy,
    Benchmark,
    ClusterConfig,
    Preflight,
    Profile,
    Verify,
)
from .connection import docker_ssh_opts, known_hosts_file, known_hosts_line, machine
from .defaults import UNSPECIFIED_HOSTS
from .pd import Instance
from .serve import Role, node_env, serve_argv
from .supervision import SUPERVISOR_PATH, Upload, local_api_host, supervisor_stop_seconds, supervisor_uploads

# Ascend's management devices, needed besides one /dev/davinciN per NPU.
MANAGEMENT_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
# The driver files and tools the container reads from the host; vllm-ascend's images expect
# them at the same paths. Read-only: nothing in the container may change the host driver.
DRIVER_PATHS = (
    "/usr/local/dcmi",
    "/etc/hccn.conf",
    "/usr/bin/hccn_tool",
    "/usr/local/Ascend/driver/tools/hccn_tool",
    "/usr/local/bin/npu-smi",
    "/usr/local/Ascend/driver/lib64",
    "/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info",
)
# The variables that name the node's NIC (HCCL_IF_IP names its address).
NIC_ENV = NETWORK_ENV[1:]
LABEL_PREFIX = f"{PROJECT}."
# The label the checks and tests find a stack's containers by.
STACK_LABEL = f"{LABEL_PREFIX}stack"
# The labels naming a container's node and its role in the group (the policies read them).
NODE_LABEL = f"{LABEL_PREFIX}node"
ROLE_LABEL = f"{LABEL_PREFIX}role"
GROUP_LABEL = f"{LABEL_PREFIX}group"


@dataclass(frozen=True)
class Device:
    host_path: str
    container_path: str


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool


@dataclass(frozen=True)
class NodePlan:
    index: int
    name: str
    role: Role
    ip: str
    nic: str
    docker_host: str
    # Where the node's NPU devices and driver files are found ("/" on real hardware).
    host_root: str
    # The options of the deploying machine's `ssh` for an ssh:// Docker host.
    docker_ssh_opts: tuple[str, ...]
    # This node's line of the stack's known_hosts file (None: its Docker host is not pinned).
    known_hosts_line: str | None
    ssh_user: str
    ssh_port: int
    host_key: str | None
    container_name: str
    # The node's former name, whose resources it takes over (nodes[i].renamedFrom).
    renamed_from: str | None
    image: str
    image_pull_timeout_minutes: int
    devices: tuple[Device, ...]
    mounts: tuple[Mount, ...]
    env: tuple[tuple[str, str], ...]
    # Names of env entries whose values come from Pulumi secrets.
    secret_env: frozenset[str]
    argv: tuple[str, ...]
    # The group supervisor in front of `argv` (supervision.enabled), and the files it needs.
    entrypoint: tuple[str, ...]
    uploads: tuple[Upload, ...]
    # Where its /metrics and /state answer on the node's address; None without supervision.
    supervisor_port: int | None
    dp_start_rank: int
    dp_local: int
    shm_bytes: int
    restart: str
    privileged: bool
    stop_grace_seconds: int
    # What `docker stop`, `docker restart` and a daemon shutdown give PID 1 (Docker's own 10 s
    # would SIGKILL the supervisor mid-stop); None: Docker's default, without a supervisor.
    docker_stop_seconds: int | None
    labels: tuple[tuple[str, str], ...]
    # Config keys (besides the named secrets) the user set as secrets; see `hides`.
    secret_keys: frozenset[str]

    def hides(self, *keys: str) -> bool:
        """Whether a value derived from these config keys must be a Pulumi secret."""
        return not self.secret_keys.isdisjoint(keys)

    @property
    def local_engine(self) -> bool:
        """Docker runs on the deploying machine itself, so node commands need no SSH."""
        return self.docker_host.startswith("unix://")

    @property
    def ssh_connection(self) -> dict | None:
        """How `python -m checks` and the diagnostics reach the node (None: the local engine):
        the Docker provider's ssh options, pinned to the node's hostKey."""
        if self.local_engine:
            return None
        return {
            "host": self.ip,
            "user": self.ssh_user,
            "port": self.ssh_port,
            "hostKey": self.host_key,
            "opts": list(self.docker_ssh_opts),
        }

    @property
    def npus(self) -> int:
        return sum(1 for d in self.devices if d.container_path.removeprefix("/dev/davinci").isdigit())

    @property
    def driver_paths(self) -> tuple[str, ...]:
        return tuple(m.host_path for m in self.mounts if m.read_only)

    @property
    def driver_version_file(self) -> str:
        return next(m.host_path for m in self.mounts if m.container_path.endswith("/version.info"))

    @property
    def weights_dir(self) -> str:
        return next(m.host_path for m in self.mounts if m.container_path == WEIGHTS_MOUNT)

    @property
    def ranks(self) -> range:
        return range(self.dp_start_rank, self.dp_start_rank + self.dp_local)

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    @property
    def supervisor_url(self) -> str | None:
        """The supervisor's base URL (`/metrics`, `/state`), reachable from every node."""
        return None if self.supervisor_port is None else f"http://{url_host(self.ip)}:{self.supervisor_port}"


@dataclass(frozen=True)
class ClusterPlan:
    stack: str
    profile: Profile
    nodes: tuple[NodePlan, ...]
    served_model_name: str
    port: int
    listen_host: str
    # What clients use: the front door's URL (or vllm's own without one), from anywhere and on
    # the head host itself, where the verification runs.
    client_url: str
    client_local_url: str
    model: str
    # model.requiredHbmGb: the preflight checks each node's NPUs hold their share of it.
    required_hbm_gb: int
    preflight: Preflight
    verify: Verify
    benchmark: Benchmark
    accuracy: Accuracy
    stage_weights: bool
    weights_shared: bool
    use_modelscope: bool
    ssh_private_key: str | None
    # Changes whenever anything the data-parallel group shares changes: every node is then
    # replaced together, because vllm cannot re-admit a single restarted rank.
    group_fingerprint: str
    # The group's name when it is one of several behind the router; None: the stack's one group.
    group: str | None = None
    # A prefill or decode instance's engine and KV ports (core/pd.py); None: it serves both.
    kv: Instance | None = None

    @property
    def known_hosts_file(self) -> str:
        """Where the deploying machine keeps the stack's pinned host keys for the Docker
        channel. `~` (which ssh expands itself) keeps the provider's options the same on
        every machine that deploys the stack."""
        return known_hosts_file(self.stack)

    @property
    def known_hosts(self) -> str:
        """The known_hosts file's content: one line per node with a hostKey and an ssh:// Docker host."""
        return "".join(f"{n.known_hosts_line}\n" for n in self.nodes if n.known_hosts_line)

    @property
    def head(self) -> NodePlan:
        return self.nodes[0]

    @property
    def endpoint(self) -> str:
        return f"{self.client_url}/v1"

    @property
    def head_local_url(self) -> str:
        """The API as seen on the head host itself, where the verification commands run."""
        return f"http://{url_host(self.listen_host)}:{self.port}"

    @property
    def api_key(self) -> str | None:
        return dict(self.head.env).get(SECRET_ENV["apiKey"])

    @property
    def smoke_request(self) -> dict:
        # The tutorial's request. Its max_completion_tokens is a chat-API field that vllm's
        # /v1/completions ignores (answering 16 tokens), so max_tokens carries the 50.
        return {
            "model": self.served_model_name,
            "prompt": "The future of AI is",
            "max_completion_tokens": 50,
            "max_tokens": 50,
            "temperature": 0,
        }

    def smoke_curl(self, with_api_key: bool, endpoint: str | None = None) -> str:
        """The tutorial's request as a command to paste or pipe to `sh`, every value quoted. The
        API key's header reaches curl on its standard input (`-H @-`), from a here-document the
        shell itself expands, so the key is on no command line (`ps` shows every one)."""
        url = shlex.quote(f"{endpoint or self.endpoint}/completions")
        body = shlex.quote(json.dumps(self.smoke_request))
        command = f"curl -sS {url} -H 'Content-Type: application/json' -d {body}"
        return f"{command} -H @- <<EOF\nAuthorization: Bearer $VLLM_API_KEY\nEOF" if with_api_key else command


def url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def under_root(root: str, path: str) -> str:
    """A host path below a node's hostRoot."""
    return path if root == "/" else root.rstrip("/") + path


def node_devices(profile: Profile, host_root: str) -> tuple[Device, ...]:
    paths = [f"/dev/davinci{i}" for i in range(profile.npus)] + list(MANAGEMENT_DEVICES)
    return tuple(Device(under_root(host_root, p), p) for p in paths)


def node_mounts(cfg: ClusterConfig, host_root: str) -> tuple[Mount, ...]:
    driver = [Mount(under_root(host_root, p), p, read_only=True) for p in DRIVER_PATHS]
    return tuple(driver + [Mount(cfg.model.weights_dir, WEIGHTS_MOUNT, read_only=False)])


def _fingerprint(nodes: list[NodePlan]) -> str:
    # Secret values stay out: a label is readable by anyone with Docker access. Secrets are the
    # same on every node, so changing one changes every node's env and replaces them all anyway.
    shared = [
        {
            # The name is a container label: renaming one node restarts its rank, so the group too.
            "name": n.name,
            "image": n.image,
            "argv": n.argv,
            "entrypoint": n.entrypoint,
            # Holds supervision.groupEpoch: raising it replaces the whole group.
            "uploads": [(u.path, hashlib.sha256(u.content.encode()).hexdigest(), u.executable) for u in n.uploads],
            "env": [(k, "<secret>" if k in n.secret_env else v) for k, v in n.env],
            "devices": [(d.host_path, d.container_path) for d in n.devices],
            "mounts": [(m.host_path, m.container_path, m.read_only) for m in n.mounts],
            "shm": n.shm_bytes,
            "privileged": n.privileged,
            "docker_host": machine(n.docker_host),
            "container": n.container_name,
        }
        for n in nodes
    ]
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:16]


def plan_cluster(cfg: ClusterConfig, stack: str, group: str | None = None, kv: Instance | None = None) -> ClusterPlan:
    """The plan for every node of a validated config; node 0 is the head. `group`: the group's
    name when it is one of several behind the router (core/groups.py); `kv`: its engine and KV
    ports when it is a prefill or decode instance (core/pd.py)."""
    profile = cfg.hardware
    count = len(cfg.nodes)
    dp_local = cfg.serve.data_parallel_size // count
    image = cfg.image.reference(profile)
    unlabelled = []
    for index, node in enumerate(cfg.nodes):
        role: Role = "single" if count == 1 else ("head" if index == 0 else "headless")
        start = index * dp_local
        env = node_env(cfg, node.ip, node.nic)
        docker_host = cfg.docker_url(node)
        pin = known_hosts_line(docker_host, node.host_key)
        unlabelled.append(
            NodePlan(
                index=index,
                name=node.name,
                role=role,
                ip=node.ip,
                nic=node.nic,
                docker_host=docker_host,
                host_root=node.host_root,
                docker_ssh_opts=docker_ssh_opts(docker_host, pin is not None, stack, node.ssh_opts),
                known_hosts_line=pin,
                ssh_user=cfg.ssh.user,
                ssh_port=cfg.ssh.port,
                host_key=node.host_key,
                container_name=node.container_name,
                renamed_from=node.renamed_from,
                image=image,
                image_pull_timeout_minutes=cfg.image.pull_timeout_minutes,
                devices=node_devices(profile, node.host_root),
                mounts=node_mounts(cfg, node.host_root),
                env=env,
                secret_env=cfg.secret_env_names & {k for k, _ in env},
                argv=serve_argv(cfg, role, start, dp_local, behind_router=group is not None),
                entrypoint=(SUPERVISOR_PATH,) if cfg.supervision.enabled else (),
                uploads=supervisor_uploads(cfg, index, group=""),
                supervisor_port=cfg.supervision.metrics_port if cfg.supervision.enabled else None,
                dp_start_rank=start,
                dp_local=dp_local,
                shm_bytes=cfg.container.shm_bytes,
                restart=cfg.container.restart,
                privileged=cfg.container.privileged,
                stop_grace_seconds=cfg.container.stop_grace_seconds,
                docker_stop_seconds=supervisor_stop_seconds(cfg),
                labels=(),
                secret_keys=cfg.user_secret_keys,
            )
        )
    fingerprint = _fingerprint(unlabelled)
    nodes = tuple(
        _with_labels(
            replace(n, uploads=supervisor_uploads(cfg, n.index, group=fingerprint)),
            stack=stack,
            model=cfg.model.served_name,
            fingerprint=fingerprint,
            group=group,
        )
        for n in unlabelled
    )
    return ClusterPlan(
        stack=stack,
        profile=profile,
        nodes=nodes,
        served_model_name=cfg.model.served_name,
        port=cfg.serve.port,
        listen_host=local_api_host(cfg.api_host),
        # One of several groups is reached through the router; its own URL is its head's API.
        client_url=client_url(cfg, cfg.nodes[0].ip, door=group is None),
        client_local_url=client_url(cfg, None, door=group is None),
        group=group,
        kv=kv,
        model=cfg.model.name,
        required_hbm_gb=cfg.model.required_hbm_gb,
        preflight=cfg.preflight,
        verify=cfg.verify,
        benchmark=cfg.benchmark,
        accuracy=cfg.accuracy,
        stage_weights=cfg.weights.stage,
        weights_shared=cfg.weights.shared,
        use_modelscope=cfg.model.use_modelscope,
        ssh_private_key=cfg.ssh_private_key,
        group_fingerprint=fingerprint,
    )


def client_url(cfg: ClusterConfig, node_ip: str | None, door: bool) -> str:
    """The front door's URL (`door` and frontDoor.enabled), else vllm's: at the address of the node
    it runs on (`node_ip`) where it listens on every interface, else at the one address it listens
    on; `node_ip` None: as that node itself reaches it."""
    fd = cfg.front_door
    door = door and fd.enabled
    listen, port = (fd.listen_address, fd.port) if door else (cfg.api_host, cfg.serve.port)
    host = listen if listen not in UNSPECIFIED_HOSTS else node_ip or local_api_host(listen)
    return f"http://{url_host(host)}:{port}"


def _with_labels(node: NodePlan, stack: str, model: str, fingerprint: str, group: str | None) -> NodePlan:
    labels = {
        STACK_LABEL: stack,
        NODE_LABEL: node.name,
        ROLE_LABEL: node.role,
        # Which of several groups behind the router (the policy pack judges each group apart).
        **({GROUP_LABEL: group} if group else {}),
        **{
            LABEL_PREFIX + key: value
            for key, value in {
                "model": model,
                "dp-ranks": f"{node.ranks.start}-{node.ranks.stop - 1}",
                "dp-group": fingerprint,
            }.items()
        },
    }
    return replace(node, labels=tuple(labels.items()))


def find_node(plan: ClusterPlan, name: str) -> NodePlan | None:
    return next((n for n in plan.nodes if n.name == name), None)
