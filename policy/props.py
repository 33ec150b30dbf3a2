"""Reading resource props the way every policy needs them: unknown-tolerant, secrets unwrapped,
a `vllm serve` command parsed into flags, a container seen as one node.

Props arrive in Pulumi wire names (`networkMode`, `shmSize`, ...). At preview some values are
unknown: pulumi-policy wraps props in a proxy that raises `UnknownValueError` on access. Every
policy first copies the props into plain Python with `plain()`, which turns unknown values into
the `UNKNOWN` marker, and skips a check whose inputs are not known yet, so a preview never fails
for a value the engine cannot know.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, get_args
from urllib.parse import urlsplit

from pulumi.runtime import rpc
from pulumi_policy import ReportViolation, ResourceValidationArgs, Secret, StackValidationArgs
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from core.plan import NODE_LABEL, ROLE_LABEL, Role

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
LOCAL_COMMAND = "command:local:Command"
REMOTE_COMMANDS = ("command:remote:Command", "command:remote:CopyToRemote", "command:remote:CopyFile")
SERVING_ROLES = get_args(Role)


# --- unknown-tolerant access -------------------------------------------------------------------


class _Unknown:
    """A value the engine cannot know during preview."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()
_SENTINELS = {
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_STRING_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_OBJECT_VALUE,
}


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN or (isinstance(value, str) and value in _SENTINELS)


def plain(value: Any) -> Any:
    """A plain copy of props (dicts, lists, scalars), with every unknown value as UNKNOWN.

    Accepts pulumi-policy's unknown-checking proxies, secrets and raw sentinel strings alike.
    """
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig and "value" in value:
        return plain(value["value"])  # a secret still in its wire form
    if is_unknown(value):
        return UNKNOWN
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if hasattr(value, "keys"):
        out = {}
        for key in list(value.keys()):
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN
        return out
    if hasattr(value, "__len__") and hasattr(value, "__getitem__"):
        items = []
        for i in range(len(value)):
            try:
                items.append(plain(value[i]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def as_list(value: Any) -> list | None:
    """The list, [] when absent, None when unknown or not a list (the check is then skipped)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return None


# --- reading a vllm serve command --------------------------------------------------------------


@dataclass
class Argv:
    """`vllm serve MODEL --flag value --switch ...` as ordered (flag, value) pairs."""

    model: str | None
    pairs: list[tuple[str, str | None]] = field(default_factory=list)

    @classmethod
    def parse(cls, rest: list[str]) -> Argv:
        """From the tokens after `vllm serve`."""
        model = None
        pairs: list[tuple[str, str | None]] = []
        i = 0
        while i < len(rest):
            token = rest[i]
            if token.startswith("--"):
                if "=" in token:
                    flag, value = token.split("=", 1)
                    pairs.append((flag, value))
                elif i + 1 < len(rest) and not rest[i + 1].startswith("--"):
                    pairs.append((token, rest[i + 1]))
                    i += 1
                else:
                    pairs.append((token, None))
            elif model is None and not pairs:
                model = token
            else:
                pairs.append(("", token))
            i += 1
        for flag, value in pairs:
            if flag == "--model" and model is None:
                model = value
        return cls(model, pairs)

    def has(self, flag: str) -> bool:
        return any(f == flag for f, _ in self.pairs)

    def get(self, flag: str) -> str | None:
        for f, value in self.pairs:
            if f == flag:
                return value
        return None

    def get_int(self, flag: str, default: int | None = None) -> int | None:
        value = self.get(flag)
        if value is None:
            return default if not self.has(flag) else None
        try:
            return int(value)
        except ValueError:
            return None


# Modules that serve vllm's API with `python -m MODULE <serve arguments>`; any other vllm module
# serves with a `serve` subcommand (`python -m vllm.entrypoints.cli.main serve ...`).
_SERVER_MODULES = ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server")


def _module_serve_start(tokens: list[str], i: int) -> int | None:
    """Where the serve arguments start when tokens[i] is `-m` (or `-mMODULE`) naming vllm."""
    token = tokens[i]
    if token == "-m":
        module, after = (tokens[i + 1] if i + 1 < len(tokens) else ""), i + 2
    elif token.startswith("-m") and not token.startswith("--"):
        module, after = token[2:], i + 1
    else:
        return None
    if module in _SERVER_MODULES:
        return after
    if (module == "vllm" or module.startswith("vllm.")) and tokens[after : after + 1] == ["serve"]:
        return after + 1
    return None


def serve_start(tokens: list[str]) -> int | None:
    """The index of the first argument after `vllm serve` in an argv (also after an `env` or
    interpreter prefix: `env K=V vllm serve`, `python3 -m vllm.entrypoints.openai.api_server`,
    `python -m vllm.entrypoints.cli.main serve`); None when it runs no vllm server itself."""
    for i, token in enumerate(tokens):
        if posixpath.basename(token) == "vllm" and tokens[i + 1 : i + 2] == ["serve"]:
            return i + 2
        start = _module_serve_start(tokens, i)
        if start is not None:
            return start
    return None


def shell_words(line: str) -> list[str] | None:
    """A shell command line as its words (`;`, `&&`, `|` apart); None when it does not parse."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:
        return None


def serve_args(command: list) -> list[str] | None:
    """The tokens after `vllm serve` in a container's argv, also behind a wrapper (an entrypoint
    script, `env K=V`, `python -m vllm...`, `sh -c "exec vllm serve ..."`); None when it runs no
    vllm server."""
    tokens = [t if isinstance(t, str) else "" for t in command]
    start = serve_start(tokens)
    if start is not None:
        return tokens[start:]
    for token in tokens:
        if " " in token:  # a whole shell command line
            words = shell_words(token)
            found = serve_args(words) if words is not None else None
            if found is not None:
                return found
    return None


@dataclass
class ContainerView:
    """What the policies read from one docker.Container's props."""

    urn: str
    name: str
    node: str
    props: dict
    command: Any  # list, or UNKNOWN
    argv: Argv | None
    envs: Any  # dict, or UNKNOWN
    labels: dict = field(default_factory=dict)
    parent_urn: str | None = None
    dependency_urns: tuple[str, ...] = ()
    # The address in the container's Docker provider host (ssh://user@ADDRESS, tcp://ADDRESS:port);
    # None for a local socket or an unknown provider.
    docker_address: str | None = None

    @property
    def who(self) -> str:
        """How a message names it: `node a2-0` for a node's vllm container, `node a2-0
        (a2-0-prometheus)` for another container on the node."""
        if self.name in (self.node, f"{self.node}-vllm"):
            return f"node {self.node}"
        return f"node {self.node} ({self.name})"

    @property
    def is_vllm(self) -> bool:
        """Its `vllm serve` command is known."""
        return self.argv is not None

    @property
    def is_serving(self) -> bool:
        """A vllm serving container: it runs `vllm serve`, or the program labelled it with a role
        in the group. Other containers (exporters, dashboards) are not."""
        return self.is_vllm or self.labels.get(ROLE_LABEL) in SERVING_ROLES

    @property
    def may_serve(self) -> bool:
        """Serving, or possibly so: its command is unknown and no label says otherwise."""
        return self.is_serving or (is_unknown(self.command) and not isinstance(self.labels.get(ROLE_LABEL), str))

    @property
    def headless(self) -> bool:
        return bool(self.argv and self.argv.has("--headless"))

    @property
    def dp_size(self) -> int | None:
        return self.argv.get_int("--data-parallel-size", 1) if self.argv else None

    @property
    def dp_local(self) -> int | None:
        if not self.argv:
            return None
        if self.argv.has("--data-parallel-size-local"):
            return self.argv.get_int("--data-parallel-size-local")
        return self.dp_size

    @property
    def start_rank(self) -> int | None:
        return self.argv.get_int("--data-parallel-start-rank", 0) if self.argv else None

    @property
    def multi_node(self) -> bool:
        """Part of a DP group that spans nodes (some of its ranks live elsewhere)."""
        if not self.argv:
            return False
        if self.headless or self.argv.has("--data-parallel-address"):
            return True
        local, size = self.dp_local, self.dp_size
        return local is not None and size is not None and local < size

    def env(self, key: str) -> Any:
        if not isinstance(self.envs, dict):
            return UNKNOWN
        return self.envs.get(key)


def labels_of(value: Any) -> dict:
    labels = {}
    for item in as_list(value) or []:
        if isinstance(item, dict) and isinstance(item.get("label"), str):
            label = item.get("value")
            labels[item["label"]] = None if is_unknown(label) else label
    return labels


def _envs(value: Any) -> Any:
    items = as_list(value)
    if items is None:
        return UNKNOWN
    env = {}
    for item in items:
        if not isinstance(item, str) or is_unknown(item):
            return UNKNOWN
        key, _, val = item.partition("=")
        env[key] = val
    return env


def node_name(resource_name: str, labels: dict, suffix: str) -> str:
    label = labels.get(NODE_LABEL)
    if isinstance(label, str) and label:
        return label
    return resource_name[: -len(suffix)] if suffix and resource_name.endswith(suffix) else resource_name


def _known_list(value: Any) -> Any:
    """The list, None when absent, UNKNOWN when it or an item is not known yet."""
    if value is None:
        return None
    if not isinstance(value, list) or any(is_unknown(t) for t in value):
        return UNKNOWN
    return value


def _command(props: dict) -> Any:
    """The container's argv (entrypoint + command, either alone), UNKNOWN when its command is
    not known, None when it sets neither (the image's own)."""
    command, entrypoint = _known_list(props.get("command")), _known_list(props.get("entrypoints"))
    if is_unknown(command):
        return UNKNOWN
    if entrypoint is None or is_unknown(entrypoint):
        # An entrypoint not known yet: the command is what is known of the argv.
        return command if command is not None or entrypoint is None else UNKNOWN
    return entrypoint + (command or [])


def docker_address(provider: Any) -> str | None:
    props = plain(getattr(provider, "props", None))
    host = props.get("host") if isinstance(props, dict) else None
    if not isinstance(host, str) or is_unknown(host):
        return None
    try:
        return urlsplit(host).hostname
    except ValueError:
        return None


def container_view(
    urn: str,
    name: str,
    props: Any,
    parent_urn: str | None = None,
    dependency_urns: Iterable[str] = (),
    provider: Any = None,
) -> ContainerView:
    """One container as a node; `provider` is its Docker provider resource, when known."""
    props = plain(props)
    if not isinstance(props, dict):
        props = {}
    command = _command(props)
    args = serve_args(command) if isinstance(command, list) else None
    labels = labels_of(props.get("labels"))
    return ContainerView(
        urn=urn,
        name=name,
        node=node_name(name, labels, "-vllm"),
        props=props,
        command=command,
        argv=Argv.parse(args) if args is not None else None,
        envs=_envs(props.get("envs")),
        labels=labels,
        parent_urn=parent_urn,
        dependency_urns=tuple(dependency_urns),
        docker_address=docker_address(provider),
    )


def setting(args: Any, key: str, default: Any) -> Any:
    """The pack config's `key` for this policy, as the type of `default`; `default` when unset or
    unusable (the engine validates the config against the policy's schema first)."""
    try:
        value = (args.get_config() or {}).get(key)
    except Exception:  # a stand-in without config
        return default
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            return default
    return value if isinstance(value, type(default)) else default


def on_container(check: Callable[..., None], *config: tuple[str, Any]):
    """A resource policy's validate that runs `check(view, report, *settings)` on each container,
    the settings being the pack config's values of `config` ((key, default) pairs)."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != CONTAINER:
            return
        view = container_view(args.urn, args.name, args.props, provider=getattr(args, "provider", None))
        values = [setting(args, key, default) for key, default in config]
        check(view, lambda message: report_violation(message, None), *values)

    return validate


def stack_views(args: StackValidationArgs) -> list[ContainerView]:
    """Every container of the stack, with its parent and dependencies."""
    views = []
    for r in args.resources:
        if r.resource_type != CONTAINER:
            continue
        parent = getattr(r, "parent", None)
        parent_urn = getattr(parent, "urn", None) or getattr(getattr(r, "opts", None), "parent", None)
        deps = [getattr(d, "urn", d) for d in (getattr(r, "dependencies", None) or [])]
        views.append(container_view(r.urn, r.name, r.props, parent_urn, deps, getattr(r, "provider", None)))
    return views


def in_rank_order(views: list[ContainerView]) -> list[ContainerView]:
    """The vllm nodes among `views`, rank 0's first: the engine's resource order is not theirs."""
    return sorted(
        (v for v in views if v.is_vllm),
        key=lambda v: (v.start_rank if v.start_rank is not None else 1 << 30, v.node),
    )
