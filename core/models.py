"""The stack configuration's keys: what a site may set, each section a pydantic model.

Every default is the reference deployment's (see defaults.py). Checks that read one key live
here; checks across keys and nodes live in rules.py. One file, about 400 lines, on purpose: it is
the one list of keys a site may set, read top to bottom beside the README's configuration
reference, and its sections share nothing but `section.py`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from .defaults import (
    AUTO_NIC,
    MIN_SHM_BYTES,
    MULTI_NODE_ENV,
    PROFILES,
    SECRET_ENV,
    SECRET_KEYS,
    SEED_COMPILATION_CONFIG,
    SEED_SPECULATIVE_CONFIG,
    SINGLE_NODE_ENV,
    SUPERVISION_METRICS_PORT,
    WEIGHTS_MOUNT,
    Profile,
)
from .front_door_settings import FrontDoor
from .images import image_reference_problem, registry_problem, repository_problem, tag_problem
from .observability_settings import Observability
from .pd_settings import Disaggregation
from .preflight_settings import Preflight
from .router_settings import Group, Router
from .section import Section as _Section
from .section import absolute_path as _absolute_path
from .section import ip_address
from .section import no_control_characters as _no_control_characters
from .vllm_releases import RELEASES, SUPPORTED_VLLM, release_of, tag_of

# Every pattern here is matched against the WHOLE value (`fullmatch`): `re.match` with `$` would
# accept a trailing newline, which a shell then reads as the start of a new command.
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
_NIC = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")  # Linux IFNAMSIZ allows 15 characters
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIZE = re.compile(r"(\d+)([kmg]?)b?", re.IGNORECASE)
# A POSIX user name (the portable filename characters, not starting with '-'), as useradd takes it.
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_HOST_KEY = re.compile(r"(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+")
# A DNS name or a bracketed IPv6 address (no scope ID), as a Docker URL names its host.
_DNS_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
_URL_HOST = rf"(?:{_DNS_NAME}|\[[0-9A-Fa-f:.]+\])"
_DOCKER_HOSTS = {
    "ssh": re.compile(rf"ssh://(?:{_USER.pattern}@)?{_URL_HOST}(?::[0-9]{{1,5}})?"),
    "unix": re.compile(r"unix:///[A-Za-z0-9._+@/-]*"),
    "npipe": re.compile(r"npipe://[A-Za-z0-9._/\\-]+"),
}
_DOCKER_HOST_FORMS = "ssh://user@host[:port] or unix:///path/to/docker.sock"


# ssh options that change which host keys ssh trusts or what it sends, or read a whole other
# configuration: ssh keeps the first value of an option, so the program's pinning comes first, but
# these add to it rather than replace it (KnownHostsCommand's keys are trusted besides the file).
_LOOSENING_SSH_OPTIONS = {
    "stricthostkeychecking",
    "userknownhostsfile",
    "globalknownhostsfile",
    "knownhostscommand",
    "hostkeyalias",
    "checkhostip",
    "updatehostkeys",
    "sendenv",
    "setenv",
    "permitlocalcommand",
    "localcommand",
}


def _loosening_ssh_options(items: list[str]) -> set[str]:
    """The options of an ssh argv fragment that loosen its trust: `-o Name=value`, `-oName value`
    (either spelling, any case) and `-F` (another configuration file)."""
    found, after_o = set(), False
    for item in items:
        if after_o:
            name, after_o = item, False
        elif item.startswith("-o"):
            name = item[2:]
            if not name:
                after_o = True
                continue
        else:
            if item.startswith("-F"):
                found.add("-F")
            continue
        key = re.split(r"[=\s]", name.strip(), maxsplit=1)[0]
        if key.lower() in _LOOSENING_SSH_OPTIONS:
            found.add(key)
    return found


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
    # The node's name before a rename: its resources keep their state instead of a second
    # container being created beside the one holding the NPUs.
    renamed_from: str | None = None

    @field_validator("name", "renamed_from")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a valid node name; use 1-40 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        return v

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        return ip_address(v, "use the address of the node's NIC, e.g. 192.0.2.10")

    @field_validator("nic")
    @classmethod
    def _nic(cls, v: str) -> str:
        if v != AUTO_NIC and not _NIC.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a network interface name; use the name `ip -o addr` shows for the "
                "node's IP (at most 15 characters, e.g. enp189s0f0), or auto to discover it"
            )
        return v

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, v: str | None) -> str | None:
        if v is not None and not _HOST_KEY.fullmatch(v.strip()):
            raise ValueError(
                "is not an SSH public host key; use the key type and base64 text `ssh-keyscan <ip>` prints, "
                "e.g. ssh-ed25519 AAAAC3Nza..."
            )
        return v.strip() if v else v

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme = v.split("://", 1)[0]
        if scheme == "tcp":
            # The program hands the Docker provider no TLS material: a tcp:// engine would be the
            # node's root-equivalent Docker API, unauthenticated and in clear text on the network.
            raise ValueError(
                f"{v!r} reaches Docker over plain TCP, without TLS: anyone on that network would own the node; "
                f"use {_DOCKER_HOST_FORMS} (ssh is pinned to nodes[i].hostKey)"
            )
        pattern = _DOCKER_HOSTS.get(scheme)
        if pattern is None or not pattern.fullmatch(v):
            raise ValueError(f"{v!r} is not a Docker host; use {_DOCKER_HOST_FORMS}")
        return v

    @field_validator("ssh_opts")
    @classmethod
    def _ssh_opts(cls, v: list[str]) -> list[str]:
        for item in v:
            _no_control_characters(item)
        loosening = sorted(_loosening_ssh_options(v))
        if loosening:
            raise ValueError(
                f"{', '.join(loosening)} would loosen how ssh trusts the node (its host key is pinned with "
                "nodes[i].hostKey; these add keys it would trust, or hand it your environment); remove them, "
                "and keep sshOpts to the way in (ProxyJump, IdentityFile, ConnectTimeout, ...)"
            )
        return v

    @field_validator("container_name")
    @classmethod
    def _container_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError(f"{v!r} is not a valid container name; use letters, digits, '_', '.', '-'")
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
    # vllm-ascend images are 10-20 GB; through a mirror at ~2 MB/s that takes up to three hours,
    # far beyond the Docker provider's 20-minute default.
    pull_timeout_minutes: int = Field(default=180, ge=1)
    # The vllm the image runs, for an image whose tag names no vllm-ascend release (a digest, a
    # site's own build): it decides which vllm's `vllm serve` flags the command line is read with.
    vllm_version: str | None = None

    @field_validator("registry", "repository", "tag", "ref")
    @classmethod
    def _docker_reference(cls, v: str | None, info: ValidationInfo) -> str | None:
        checks = {
            "registry": registry_problem,
            "repository": repository_problem,
            "tag": tag_problem,
            "ref": image_reference_problem,
        }
        problem = checks[info.field_name](v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("vllm_version")
    @classmethod
    def _vllm_version(cls, v: str | None) -> str | None:
        if v is not None and v not in SUPPORTED_VLLM:
            raise ValueError(
                f"{v!r} is no vllm whose flags this program knows; use the vllm the image runs, one of "
                f"{', '.join(SUPPORTED_VLLM)}"
            )
        return v

    @model_validator(mode="after")
    def _vllm_known(self) -> Image:
        if self.vllm_version is not None or release_of(self._tag) is not None:
            return self
        key, value = ("ref", self.ref) if self.ref else ("tag", self.tag)
        message = (
            f"'{value}' names no vllm-ascend release whose vllm this program knows"
            f"{' (a digest names none)' if key == 'ref' else ''}; use the tag {', '.join(RELEASES)} (or one of their "
            f"-a3, -openeuler, ... builds), or set image.vllmVersion to the vllm the image runs, one of "
            f"{', '.join(SUPPORTED_VLLM)}"
        )
        # Raised as the key's own error, not the section's: the problem reads `image.tag: ...`, and
        # a stack with other problems is still judged with that key at its default.
        error = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(key,), input=value)
        raise ValidationError.from_exception_data(type(self).__name__, [error])

    @property
    def _tag(self) -> str:
        return tag_of(self.ref) if self.ref else self.tag

    @property
    def vllm(self) -> str:
        """The vllm the image runs: image.vllmVersion, else the one its tag's release is built on."""
        return self.vllm_version or RELEASES[release_of(self._tag)]

    def reference(self, profile: Profile) -> str:
        if self.ref:
            return self.ref
        prefix = f"{self.registry}/" if self.registry else ""
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

    @field_validator("name", "served_name")
    @classmethod
    def _text(cls, v: str) -> str:
        return _no_control_characters(v)


JsonArg = str | dict[str, Any]


class Serve(_Section):
    # None: the head's own address behind the front door, else every interface (see api_host).
    host: str | None = None
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
    def _host(cls, v: str | None) -> str | None:
        return v if v is None else ip_address(v, "use 0.0.0.0 or a node address", "an IP address to listen on")

    @field_validator("quantization")
    @classmethod
    def _quantization(cls, v: str) -> str:
        return _no_control_characters(v)

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
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise ValueError(f"{key!r} is not an environment variable name; use letters, digits and '_'")
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
    # Time vllm gets after SIGTERM to free the NPUs and HCCL ports before it is killed, when the
    # container is replaced or destroyed.
    stop_grace_seconds: int = Field(default=60, ge=0)

    @field_validator("shm_size")
    @classmethod
    def _shm_size(cls, v: str) -> str:
        match = _SIZE.fullmatch(str(v))
        if not match:
            raise ValueError(f"{v!r} is not a size; use a Docker size such as 1g or 2048m")
        if _bytes(*match.groups()) < MIN_SHM_BYTES:
            raise ValueError(f"{v} is below the 1g the tutorial uses; a smaller /dev/shm crashes vllm's EngineCore")
        return str(v)

    @property
    def shm_bytes(self) -> int:
        return _bytes(*_SIZE.fullmatch(self.shm_size).groups())


def _bytes(number: str, unit: str) -> int:
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


class Ssh(_Section):
    """How check commands reach the nodes (Docker itself uses nodes[i].dockerHost)."""

    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not _USER.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a user name; use the POSIX form: letters, digits, '_', '.' and '-', "
                "not starting with '-' or a digit, at most 32 characters (e.g. root)"
            )
        return v


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

    @field_validator("result_dir")
    @classmethod
    def _result_dir(cls, v: str) -> str:
        return _absolute_path(v)


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

    @field_validator("output_dir")
    @classmethod
    def _output_dir(cls, v: str) -> str:
        return _absolute_path(v)

    @field_validator("tasks", "tokenizer", "model_args")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        return v if v is None else _no_control_characters(v)


class Weights(_Section):
    """Download the model into model.weightsDir before the containers (skipped when already there)."""

    stage: bool = False
    # model.weightsDir is one directory shared by every node (NFS, ...): the head downloads and
    # the others verify. Otherwise every node downloads into its own, all at once.
    shared: bool = False


class Supervision(_Section):
    """The supervisor in front of every node's vllm: restarts the data-parallel group as a whole."""

    enabled: bool = True
    # Prometheus text and the group state, on each node's address (host network, no API key).
    metrics_port: int = Field(default=SUPERVISION_METRICS_PORT, ge=1, le=65535)
    # Part of the group fingerprint: raising it replaces every node's container on `pulumi up`.
    group_epoch: int = Field(default=0, ge=0)
    # Never judged by health while a generation starts: loading ~700 GB of W8A8 weights and
    # capturing graphs takes many minutes (vllm-ascend's DeepSeek CI allows 1800 s).
    start_grace_seconds: int = Field(default=3600, ge=1)
    unhealthy_seconds: int = Field(default=60, ge=1)
    # Requests running on the head but no token generated for this long: a hang that /health
    # does not show. Longer than any single decode step or prefill of a long prompt.
    stall_seconds: int = Field(default=300, ge=1)
    backoff_seconds: int = Field(default=10, ge=0)
    max_backoff_seconds: int = Field(default=600, ge=0)
    max_restarts: int = Field(default=5, ge=1)
    stop_timeout_seconds: int = Field(default=30, ge=1)
    barrier_timeout_seconds: int = Field(default=120, ge=1)
    poll_seconds: float = Field(default=2, gt=0)


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
    observability: Observability = Observability()
    front_door: FrontDoor = FrontDoor()
    # Several data-parallel groups behind one router; none: `nodes` is one group, as always.
    groups: list[Group] = []
    router: Router = Router()
    pd: Disaggregation = Disaggregation()
    supervision: Supervision = Supervision()
    api_key: str | None = None
    modelscope_token: str | None = None
    hf_token: str | None = None
    ssh_private_key: str | None = None
    grafana_admin_password: str | None = None
    # The top-level keys Pulumi holds encrypted (set by load_config).
    _secret_keys: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def user_secret_keys(self) -> frozenset[str]:
        """Keys other than the named secrets that the user set with `--secret` (e.g. `serve`
        holding a token in extraArgs): everything derived from them must stay secret too."""
        return self._secret_keys - set(SECRET_KEYS)

    @property
    def secret_env_names(self) -> frozenset[str]:
        """Container variables whose values are secrets: the named secrets, and all of `env`
        when any part of it was set with `--secret`."""
        names = {SECRET_ENV[k] for k in SECRET_ENV if getattr(self, to_snake(k)) is not None}
        if "env" in self._secret_keys:
            names |= set(self.env.single_node) | set(self.env.multi_node) | set(self.env.extra)
        return frozenset(names)

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[Group]) -> list[Group]:
        if len(v) == 1:
            raise ValueError("one group is no group; list every node under nodes alone, or name two groups or more")
        return v

    @property
    def api_host(self) -> str:
        """Where vllm listens: serve.host; unset, the head's own (cluster) address when the front
        door is the public listener, else every interface, as the tutorial has it."""
        if self.serve.host is not None:
            return self.serve.host
        return self.nodes[0].ip if self.front_door.enabled else "0.0.0.0"

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


def to_snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def camel_path(*parts: str) -> str:
    return ".".join(to_camel(p) for p in parts)
