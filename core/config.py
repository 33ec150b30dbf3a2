"""The stack configuration: what a site may set, with the reference deployment as every default.

The defaults are the values of vllm-ascend's DeepSeek-R1-W8A8 tutorial, so a stack file only
holds what differs per site (nodes, addresses, mirrors). Everything here is pure: the same
checks run under `pulumi up` and under `python -m core.render`.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic.alias_generators import to_camel

PROJECT = "deepseek-r1-ascend"

# Where vllm-ascend's images keep model caches (ModelScope, HuggingFace); model.weightsDir is
# mounted here, so results written below it persist on the host too.
WEIGHTS_MOUNT = "/root/.cache"

# Accuracy runs (gsm8k, AISBench) need long contexts; the tutorial asks for at least this.
ACCURACY_MIN_MODEL_LEN = 35000


@dataclass(frozen=True)
class Profile:
    """One Atlas server model: what its NPUs are and which image build runs on it."""

    name: str
    npus: int
    hbm_gb_per_npu: int
    # vllm-ascend publishes `<version>-a3` images for A3; the plain tag is the A2 build.
    image_tag_suffix: str

    @property
    def hbm_gb(self) -> int:
        return self.npus * self.hbm_gb_per_npu


PROFILES = {
    "atlas-800-a3": Profile("atlas-800-a3", npus=16, hbm_gb_per_npu=64, image_tag_suffix="-a3"),
    "atlas-800-a2": Profile("atlas-800-a2", npus=8, hbm_gb_per_npu=64, image_tag_suffix=""),
}

# The environment of the tutorial's scripts, besides the per-node NIC/IP variables and
# VLLM_USE_MODELSCOPE. A single node and a multi-node DP group are tuned differently.
SINGLE_NODE_ENV = {
    "HCCL_OP_EXPANSION_MODE": "AIV",
    "VLLM_ASCEND_BALANCE_SCHEDULING": "1",
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
}
MULTI_NODE_ENV = {
    "OMP_PROC_BIND": "false",
    "OMP_NUM_THREADS": "1",
    "HCCL_BUFFSIZE": "200",
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
    "VLLM_ASCEND_BALANCE_SCHEDULING": "1",
    "HCCL_INTRA_PCIE_ENABLE": "1",
    "HCCL_INTRA_ROCE_ENABLE": "0",
}
# Set from each node's address and NIC; a typo here is what hangs a cluster, so never by hand.
NETWORK_ENV = ("HCCL_IF_IP", "GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME", "HCCL_SOCKET_IFNAME")
# Secret config keys and the container variable each one becomes (vllm reads VLLM_API_KEY
# like --api-key, which keeps the key out of the command line).
SECRET_ENV = {
    "apiKey": "VLLM_API_KEY",
    "modelscopeToken": "MODELSCOPE_API_TOKEN",
    "hfToken": "HF_TOKEN",
}
SECRET_KEYS = (*SECRET_ENV, "sshPrivateKey")
# The download tokens, which weights staging needs and the API key it does not.
TOKEN_ENV = (SECRET_ENV["modelscopeToken"], SECRET_ENV["hfToken"])
# `nodes[i].nic: auto` asks the preflight to find the interface that holds the node's IP.
AUTO_NIC = "auto"

# The tutorial's JSON arguments, byte for byte.
SEED_SPECULATIVE_CONFIG = '{"num_speculative_tokens":3,"method":"mtp"}'
SEED_COMPILATION_CONFIG = '{"cudagraph_capture_sizes":[4,16,32,48,64], "cudagraph_mode": "FULL_DECODE_ONLY"}'

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_NIC = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")  # Linux IFNAMSIZ allows 15 characters
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.IGNORECASE)
MIN_SHM_BYTES = 1024**3


class ConfigError(Exception):
    """Every problem in a stack's configuration, each as `config.path: what is wrong; what would be right`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration for deepseek-r1-ascend:\n" + "\n".join(f"  - {p}" for p in problems))


class _Section(BaseModel):
    # Unknown keys are errors: a typo must never fall back silently to a default.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"'{value}' is not an absolute path; use a path starting with /")
    return value


def image_reference_problem(ref: str) -> str | None:
    """Why an image reference is not pinned, or None when it names a fixed version."""
    if _DIGEST.search(ref):
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"'{ref}' has no tag; pin a version tag such as :v0.18.0 or a @sha256: digest"
    tag = last.split(":", 1)[1]
    if tag == "latest":
        return f"'{ref}' uses the moving tag 'latest'; pin a version tag such as :v0.18.0 or a @sha256: digest"
    if not _TAG.match(tag):
        return f"'{ref}' has an invalid tag '{tag}'; use letters, digits, '.', '_' or '-'"
    return None


class Node(_Section):
    name: str
    ip: str
    nic: str
    docker_host: str | None = None
    ssh_opts: list[str] = []
    # The node's SSH host key as `ssh-keyscan` prints it ("ssh-ed25519 AAAA..."): pins the host.
    host_key: str | None = None
    container_name: str = "vllm-ascend"
    host_root: str = "/"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"'{v}' is not a valid node name; use 1-40 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        return v

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            raise ValueError(
                f"'{v}' is not an IP address; use the address of the node's NIC, e.g. 192.0.2.10"
            ) from None

    @field_validator("nic")
    @classmethod
    def _nic(cls, v: str) -> str:
        if v != AUTO_NIC and not _NIC.match(v):
            raise ValueError(
                f"'{v}' is not a network interface name; use the name `ip -o addr` shows for the "
                "node's IP (at most 15 characters, e.g. enp189s0f0), or auto to discover it"
            )
        return v

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+$", v.strip()):
            raise ValueError(
                "is not an SSH public host key; use the key type and base64 text `ssh-keyscan <ip>` prints, "
                "e.g. ssh-ed25519 AAAAC3Nza..."
            )
        return v.strip() if v else v

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(ssh|tcp|unix|npipe)://\S+$", v):
            raise ValueError(f"'{v}' is not a Docker host; use ssh://user@host, tcp://host:2376 or unix:///path")
        return v

    @field_validator("container_name")
    @classmethod
    def _container_name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", v):
            raise ValueError(f"'{v}' is not a valid container name; use letters, digits, '_', '.', '-'")
        return v

    @field_validator("host_root")
    @classmethod
    def _host_root(cls, v: str) -> str:
        return _absolute_path(v)


class Image(_Section):
    registry: str = "m.daocloud.io/quay.io"
    repository: str = "ascend/vllm-ascend"
    tag: str = "v0.18.0"
    # A full reference (tag or digest) replaces registry/repository/tag and the profile suffix.
    ref: str | None = None

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        if v == "latest":
            raise ValueError("'latest' moves between releases; pin a version tag such as v0.18.0")
        if not _TAG.match(v):
            raise ValueError(f"'{v}' is not a Docker tag; pin a version tag such as v0.18.0")
        return v

    @field_validator("ref")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        problem = image_reference_problem(v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v

    def reference(self, profile: Profile) -> str:
        if self.ref:
            return self.ref
        prefix = f"{self.registry.rstrip('/')}/" if self.registry else ""
        return f"{prefix}{self.repository}:{self.tag}{profile.image_tag_suffix}"


class Model(_Section):
    name: str = "vllm-ascend/DeepSeek-R1-W8A8"
    served_name: str = "deepseek_r1"
    # Host directory mounted at WEIGHTS_MOUNT.
    weights_dir: str = WEIGHTS_MOUNT
    use_modelscope: bool = True
    # NPU memory the weights plus a useful KV cache need: one A3 or two A2 nodes for W8A8.
    required_hbm_gb: int = Field(default=1024, gt=0)

    @field_validator("weights_dir")
    @classmethod
    def _weights_dir(cls, v: str) -> str:
        return _absolute_path(v)


JsonArg = str | dict[str, Any]


class Serve(_Section):
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    data_parallel_size: int = Field(default=4, ge=1)
    tensor_parallel_size: int = Field(default=4, ge=1)
    data_parallel_rpc_port: int = Field(default=13389, ge=1, le=65535)
    quantization: str = "ascend"
    seed: int = 1024
    enable_expert_parallel: bool = True
    async_scheduling: bool = True
    max_num_seqs: int = Field(default=16, ge=1)
    max_model_len: int = Field(default=16384, ge=1)
    max_num_batched_tokens: int = Field(default=4096, ge=1)
    trust_remote_code: bool = True
    gpu_memory_utilization: float = Field(default=0.92, gt=0, le=1)
    speculative_config: JsonArg | None = SEED_SPECULATIVE_CONFIG
    compilation_config: JsonArg | None = SEED_COMPILATION_CONFIG
    enable_prefix_caching: bool = True
    extra_args: list[str] = []

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            raise ValueError(f"'{v}' is not an IP address to listen on; use 0.0.0.0 or a node address") from None

    @field_validator("speculative_config", "compilation_config")
    @classmethod
    def _json_object(cls, v: JsonArg | None) -> JsonArg | None:
        if isinstance(v, str):
            try:
                parsed = json.loads(v)
            except ValueError as e:
                raise ValueError(f"is not valid JSON ({e}); give a JSON object or a YAML mapping") from None
            if not isinstance(parsed, dict):
                raise ValueError('must be a JSON object, e.g. {"method": "mtp"}')
        return v


def _env_values(v: Any) -> dict[str, str | None]:
    """YAML gives numbers and booleans; the environment only has strings (null drops a default)."""
    if not isinstance(v, dict):
        return v
    out: dict[str, str | None] = {}
    for key, value in v.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise ValueError(f"'{key}' is not an environment variable name; use letters, digits and '_'")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif value is not None and not isinstance(value, str):
            raise ValueError(f"{key}: give a string, number or boolean, not {type(value).__name__}")
        out[key] = value
    return out


class Env(_Section):
    # Entries here are merged over the tutorial's; null removes one of its variables.
    single_node: dict[str, str | None] = {}
    multi_node: dict[str, str | None] = {}
    extra: dict[str, str | None] = {}

    @field_validator("single_node", "multi_node", "extra", mode="before")
    @classmethod
    def _values(cls, v: Any) -> Any:
        return _env_values(v)

    def for_topology(self, multi_node: bool) -> dict[str, str]:
        base, overrides = (MULTI_NODE_ENV, self.multi_node) if multi_node else (SINGLE_NODE_ENV, self.single_node)
        merged = {**base, **overrides, **self.extra}
        return {k: v for k, v in merged.items() if v is not None}


class Container(_Section):
    shm_size: str = "1g"
    restart: Literal["no", "on-failure", "always", "unless-stopped"] = "unless-stopped"
    # Some hosts refuse --shm-size without it; it hands the container the whole host.
    privileged: bool = False

    @field_validator("shm_size")
    @classmethod
    def _shm_size(cls, v: str) -> str:
        match = _SIZE.match(str(v))
        if not match:
            raise ValueError(f"'{v}' is not a size; use a Docker size such as 1g or 2048m")
        if _bytes(*match.groups()) < MIN_SHM_BYTES:
            raise ValueError(f"{v} is below the 1g the tutorial uses; a smaller /dev/shm crashes vllm's EngineCore")
        return str(v)

    @property
    def shm_bytes(self) -> int:
        return _bytes(*_SIZE.match(self.shm_size).groups())


def _bytes(number: str, unit: str) -> int:
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


class Ssh(_Section):
    """How check commands reach the nodes (Docker itself uses nodes[i].dockerHost)."""

    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)


class Preflight(_Section):
    """Host checks before any container: NPUs, driver files, Docker, disk, NIC, NPU links."""

    enabled: bool = True
    min_free_gib: float = Field(default=50, ge=0)
    # NPU i pings NPU i of every other node (one RoCE plane per index), or every NPU pair.
    ping_pairs: Literal["same-index", "all"] = "same-index"


class Verify(_Section):
    """After the containers: wait for the head to serve, then send the tutorial's request."""

    # Loading ~700 GB of weights and compiling graphs takes a while on the first start.
    readiness_timeout_seconds: int = Field(default=3600, ge=30)
    readiness_interval_seconds: int = Field(default=10, ge=1)
    smoke_test: bool = True


class Benchmark(_Section):
    """`vllm bench serve` with the tutorial's parameters, run in the head container."""

    enabled: bool = False
    # The tutorial's synthetic prompts; other datasets need files this deployment doesn't ship.
    dataset_name: Literal["random"] = "random"
    random_input_len: int = Field(default=200, ge=1)
    num_prompts: int = Field(default=200, ge=1)
    request_rate: float = Field(default=1, gt=0)
    # Inside the container, below WEIGHTS_MOUNT: results persist in model.weightsDir.
    result_dir: str = f"{WEIGHTS_MOUNT}/benchmarks"


class Accuracy(_Section):
    """lm_eval against the head's completions API (the image must provide lm_eval)."""

    enabled: bool = False
    tasks: str = "gsm8k"
    limit: int | None = Field(default=None, ge=1)
    # lm_eval loads the model's tokenizer itself: its directory inside the head container.
    tokenizer: str | None = None
    # Appended to lm_eval's --model_args.
    model_args: str = ""
    output_dir: str = f"{WEIGHTS_MOUNT}/accuracy"


class Weights(_Section):
    """Download the model into model.weightsDir once per node (skipped when already there)."""

    stage: bool = False


class ClusterConfig(_Section):
    profile: Literal["atlas-800-a3", "atlas-800-a2"]
    nodes: list[Node] = Field(min_length=1)
    image: Image = Image()
    model: Model = Model()
    serve: Serve = Serve()
    env: Env = Env()
    container: Container = Container()
    ssh: Ssh = Ssh()
    preflight: Preflight = Preflight()
    verify: Verify = Verify()
    benchmark: Benchmark = Benchmark()
    accuracy: Accuracy = Accuracy()
    weights: Weights = Weights()
    api_key: str | None = None
    modelscope_token: str | None = None
    hf_token: str | None = None
    ssh_private_key: str | None = None
    # The top-level keys Pulumi holds encrypted (set by load_config).
    _secret_keys: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def secret_env_names(self) -> frozenset[str]:
        """Container variables whose values are secrets: the named secrets, and all of `env`
        when any part of it was set with `--secret`."""
        names = {SECRET_ENV[k] for k in SECRET_ENV if getattr(self, to_snake(k)) is not None}
        if "env" in self._secret_keys:
            names |= set(self.env.single_node) | set(self.env.multi_node) | set(self.env.extra)
        return frozenset(names)

    @property
    def hardware(self) -> Profile:
        return PROFILES[self.profile]

    def docker_url(self, node: Node) -> str:
        """The node's Docker engine: its dockerHost, else SSH with the stack's user and port."""
        if node.docker_host:
            return node.docker_host
        host = f"[{node.ip}]" if ":" in node.ip else node.ip
        port = f":{self.ssh.port}" if self.ssh.port != 22 else ""
        return f"ssh://{self.ssh.user}@{host}{port}"


# The tutorial's model flags in its order, each with the setting it comes from. Booleans are
# switches (present when true); None leaves a flag out.
MODEL_FLAGS = (
    ("--tensor-parallel-size", "serve.tensor_parallel_size"),
    ("--quantization", "serve.quantization"),
    ("--seed", "serve.seed"),
    ("--served-model-name", "model.served_name"),
    ("--enable-expert-parallel", "serve.enable_expert_parallel"),
    ("--async-scheduling", "serve.async_scheduling"),
    ("--max-num-seqs", "serve.max_num_seqs"),
    ("--max-model-len", "serve.max_model_len"),
    ("--max-num-batched-tokens", "serve.max_num_batched_tokens"),
    ("--trust-remote-code", "serve.trust_remote_code"),
    ("--gpu-memory-utilization", "serve.gpu_memory_utilization"),
    ("--speculative-config", "serve.speculative_config"),
    ("--compilation-config", "serve.compilation_config"),
)
# Flags the plan sets from topology, roles and secrets, never through extraArgs.
DERIVED_FLAGS = {
    "--host": "serve.host",
    "--port": "serve.port",
    "--headless": "nodes (node 0 is the head, the others are headless)",
    "--data-parallel-size": "serve.dataParallelSize",
    "--data-parallel-size-local": "serve.dataParallelSize divided by the number of nodes",
    "--data-parallel-start-rank": "each node's position in nodes",
    "--data-parallel-address": "nodes[0].ip",
    "--data-parallel-rpc-port": "serve.dataParallelRpcPort",
    "--enable-prefix-caching": "serve.enablePrefixCaching",
    "--no-enable-prefix-caching": "serve.enablePrefixCaching",
    "--api-key": "apiKey (a secret)",
    # vllm's short aliases of the same flags.
    "-tp": "serve.tensorParallelSize",
    "-dp": "serve.dataParallelSize",
    "-dpl": "serve.dataParallelSize divided by the number of nodes",
    "-dpr": "each node's position in nodes",
    "-dpa": "nodes[0].ip",
    "-dpp": "serve.dataParallelRpcPort",
    # Every NPU holds one tensor x data parallel rank here; pipeline stages would break that.
    "--pipeline-parallel-size": "nothing: pipeline parallelism is not supported (tensor x data parallel covers every NPU)",
    "-pp": "nothing: pipeline parallelism is not supported (tensor x data parallel covers every NPU)",
}


def _camel_path(*parts: str) -> str:
    return ".".join(to_camel(p) for p in parts)


def _flag_keys() -> dict[str, str]:
    return {**DERIVED_FLAGS, **{flag: _camel_path(*path.split(".")) for flag, path in MODEL_FLAGS}}


def _loc_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _section(loc: tuple) -> type[BaseModel] | None:
    """The model whose key the last named part of an error's location is."""
    model: type[BaseModel] | None = ClusterConfig
    names = [part for part in loc if isinstance(part, str)]
    for part in names[:-1]:
        field = next((f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return None
        inner = getattr(field.annotation, "__args__", (field.annotation,))
        model = next((t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if model is None:
            return None
    return model


def _known_keys(loc: tuple) -> list[str]:
    model = _section(loc)
    return [f.alias for f in model.model_fields.values()] if model else []


def _key_loc(loc: tuple) -> tuple:
    """An error's location cut after the last config key (pydantic appends union branch names)."""
    for end in range(len(loc), 0, -1):
        part = loc[end - 1]
        if isinstance(part, int) or part in _known_keys(loc[:end]):
            return loc[:end]
    return loc


def _describe(error: dict) -> str:
    kind = error["type"]
    path = _loc_path(error["loc"] if kind == "extra_forbidden" else _key_loc(error["loc"]))
    if kind == "extra_forbidden":
        known = _known_keys(error["loc"])
        unknown = str(error["loc"][-1])
        close = [k for k in known if unknown.lower().startswith(k.lower())] or difflib.get_close_matches(
            unknown, known, n=1
        )
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{path}: unknown key; {hint}known keys here: {', '.join(known)}"
    if kind == "missing":
        return f"{path}: required key is missing"
    message = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        return f"{path}: {message}"
    shown = "a secret value" if error["loc"] and error["loc"][0] in SECRET_KEYS else repr(error["input"])
    if kind == "literal_error":
        return f"{path}: {shown} is not allowed; {message[0].lower()}{message[1:]}"
    return f"{path}: got {shown}; {message[0].lower()}{message[1:]}"


def _topology_problems(cfg: ClusterConfig) -> list[str]:
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
    return problems


def _node_problems(cfg: ClusterConfig) -> list[str]:
    problems = []
    first_seen: dict[tuple[str, str], int] = {}
    families = {ipaddress.ip_address(n.ip).version for n in cfg.nodes}
    for i, node in enumerate(cfg.nodes):
        docker = cfg.docker_url(node)
        # Two nodes on one Docker host must not claim the same NPUs or the same container name.
        for key, value, shown, what in (
            ("name", node.name, node.name, "node names"),
            ("ip", node.ip, node.ip, "node addresses"),
            ("containerName", (docker, node.container_name), node.container_name, "container names on one Docker host"),
            ("hostRoot", (docker, node.host_root), node.host_root, "NPU devices on one Docker host"),
        ):
            j = first_seen.setdefault((key, str(value)), i)
            if j != i:
                problems.append(f"nodes[{i}].{key}: '{shown}' is also nodes[{j}].{key}; {what} must be unique")
        address = ipaddress.ip_address(node.ip)
        if address.is_unspecified:
            problems.append(f"nodes[{i}].ip: {node.ip} is no node's address; use the address of its NIC")
        elif address.is_loopback and not docker.startswith("unix://"):
            problems.append(
                f"nodes[{i}].ip: {node.ip} is a loopback address, which other nodes cannot reach; "
                "use the address of the node's NIC (loopback only suits nodes on this machine's Docker)"
            )
        if len(families) > 1 and address.version != ipaddress.ip_address(cfg.nodes[0].ip).version:
            problems.append(
                f"nodes[{i}].ip: {node.ip} is IPv{address.version} but nodes[0].ip is "
                f"IPv{ipaddress.ip_address(cfg.nodes[0].ip).version}; a DP group uses one address family"
            )
    return problems


def _setting_problems(cfg: ClusterConfig, secret_keys: frozenset[str]) -> list[str]:
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
                problems.append(f"{_camel_path('env', section)}.{name}: set from {source}; remove it here")
    flag_keys = _flag_keys()
    for i, arg in enumerate(cfg.serve.extra_args):
        flag = arg.split("=", 1)[0]
        if flag in flag_keys:
            problems.append(f"serve.extraArgs[{i}]: '{flag}' is set from {flag_keys[flag]}; set it there")
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


def to_snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def load_config(raw: dict[str, Any], secret_keys: frozenset[str] = frozenset()) -> ClusterConfig:
    """Validate a stack's settings (keys without the project prefix) or raise ConfigError with all problems.

    `secret_keys` are the top-level keys Pulumi holds encrypted.
    """
    try:
        cfg, problems = ClusterConfig.model_validate(raw), []
    except ValidationError as e:
        problems = _one_line_per_key([_describe(err) for err in e.errors()])
        cfg = _with_defaults_where_invalid(raw, e.errors())
        if cfg is None:
            raise ConfigError(problems) from None
    # Cross-key rules also run when a key with a default was invalid (judged with its default),
    # so a typo and a topology mistake show up in one run; never twice for one key.
    reported = {p.split(":", 1)[0] for p in problems}
    problems += [
        p
        for p in _node_problems(cfg) + _topology_problems(cfg) + _setting_problems(cfg, secret_keys)
        if p.split(":", 1)[0] not in reported
    ]
    if problems:
        raise ConfigError(problems)
    cfg._secret_keys = secret_keys
    return cfg


def _one_line_per_key(problems: list[str]) -> list[str]:
    """A value that fits none of a key's accepted types gets one line naming them all."""
    merged: dict[str, str] = {}
    for problem in problems:
        key = problem.split(":", 1)[0]
        if key in merged:
            merged[key] += " or " + problem.rsplit("input should be ", 1)[-1]
        else:
            merged[key] = problem
    return list(merged.values())


def _with_defaults_where_invalid(raw: dict[str, Any], errors: list[dict]) -> ClusterConfig | None:
    """The config with every invalid or unknown key dropped, if each dropped key has a default."""
    trimmed = copy.deepcopy(raw)
    for error in errors:
        loc = error["loc"] if error["type"] == "extra_forbidden" else _key_loc(error["loc"])
        loc = loc[: max(i for i, part in enumerate(loc) if isinstance(part, str)) + 1]
        model = _section(loc)
        field = next((f for f in model.model_fields.values() if f.alias == loc[-1]), None) if model else None
        if error["type"] != "extra_forbidden" and (field is None or field.is_required()):
            return None
        try:
            parent = trimmed
            for part in loc[:-1]:
                parent = parent[part]
            parent.pop(loc[-1], None)
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    try:
        return ClusterConfig.model_validate(trimmed)
    except ValidationError:
        return None
