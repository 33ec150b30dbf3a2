"""Access: who can use a serving container's API, and who can read the keys it is given."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from core.config import SECRET_ENV
from core.flags import SECRET_FOR_FLAG, is_credential
from core.vllm_args import ArgError, Flag, load_table, normalise, resolve
from props import Argv, ContainerView, is_unknown, on_container, serve_start, shell_words, stack_views

_ALL_INTERFACES = {"0.0.0.0", "::", "[::]", ""}


def validate_open_api(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for v in stack_views(args):
        if not v.is_vllm or v.headless:
            continue
        host = v.argv.get("--host")
        port = v.argv.get("--port") or "8000"
        key = v.env(SECRET_ENV["apiKey"])
        keyed = v.argv.has("--api-key") or is_unknown(key) or (isinstance(key, str) and bool(key))
        if host is None or host in _ALL_INTERFACES:
            # vllm checks the key on /v1 paths only: /invocations and its other routes answer anyone.
            report_violation(
                f"node {v.node}: the model is served on every interface ({host or '0.0.0.0'}:{port}), where "
                f"{'/invocations and the routes outside /v1 need no key' if keyed else 'no API key guards it'}; "
                "leave serve.host unset so vllm listens on the head's cluster address behind the front door "
                "(frontDoor), which exposes only /v1 and checks the key",
                v.urn,
            )
        elif not keyed:
            report_violation(
                f"node {v.node}: the model is served without --api-key or VLLM_API_KEY, so anyone who reaches "
                f"{host}:{port} or the front door uses it; set a key with `pulumi config set --secret apiKey <key>`",
                v.urn,
            )


OPEN_API = StackValidationPolicy(
    name="vllm-api-key-on-open-api",
    description="The model is never reachable without the API key: vllm listens on one (cluster) address, "
    "and an API key is set.",
    validate=validate_open_api,
    enforcement_level=EnforcementLevel.ADVISORY,
)


# Values that are credentials whatever names them: Hugging Face and OpenAI-style tokens.
_CREDENTIAL_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,})")
# `NAME=value`, as `env` and a shell read it before a command.
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
# A value that only names a variable (`$HF_TOKEN`, `${HF_TOKEN:?}`): the environment keeps it.
_REFERENCE = re.compile(r"\$(\{[A-Za-z_][A-Za-z0-9_]*(:?[-=?+][^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)")
# The secret config key of each variable the program fills from one (HF_TOKEN: hfToken).
_SECRET_FOR_ENV = {env: key for key, env in SECRET_ENV.items()}


@dataclass(frozen=True)
class Credential:
    """A credential found on a container's command line (never its value)."""

    # As written: the flag (`--api_k`), `NAME=...` for an assignment, or "an argument".
    shown: str
    # Among the arguments of vllm serve (or vllm's API server module).
    on_vllm: bool
    # The vllm flag's own name, or the variable assigned.
    flag: str | None = None
    env: str | None = None


def _names_credential(name: str) -> bool:
    """core.flags' rule for a flag that takes a credential, for a name vllm's table does not have:
    another program's flag, or a variable (HF_TOKEN reads as --hf-token)."""
    flag = "--" + name.lstrip("-").lower().replace("_", "-")
    return is_credential(Flag(name=flag, aliases=(), kind="str", negatable=False))


def _vllm_flag(flag: str) -> Flag | None:
    """The flag as vllm reads it (a unique prefix or an underscore spelling names the same flag);
    None when vllm does not know it."""
    try:
        option = resolve(normalise(flag), load_table())
    except ArgError:
        return None
    return option.flag if option else None


def _path(value: str) -> bool:
    """A file named by another program's `--key-file`-style flag, not a credential itself."""
    return value.startswith(("/", "./", "../", "~/"))


def credentials(argv: list) -> list[Credential]:
    """Every credential on an argv (entrypoint + command): in the arguments of `vllm serve` (read as
    vllm reads them), in another program's flags, in `NAME=value` assignments (`env HF_TOKEN=...
    vllm serve`), inside a shell command line (`sh -c "..."`), and any token-looking value."""
    tokens = [t if isinstance(t, str) else "" for t in argv]
    start = serve_start(tokens)
    found = _outside_vllm(tokens if start is None else tokens[:start])
    if start is not None:
        found += _in_vllm(tokens[start:])
    return found


def _assignment(token: str) -> Credential | None:
    match = _ASSIGNMENT.fullmatch(token)
    if not match:
        return None
    name, value = match.groups()
    if value and _names_credential(name) and not _REFERENCE.fullmatch(value) and not _path(value):
        return Credential(f"{name}=...", on_vllm=False, env=name)
    return None


def _outside_vllm(tokens: list[str]) -> list[Credential]:
    found: list[Credential] = []
    reported: set[int] = set()
    for i, token in enumerate(tokens):
        if any(c.isspace() for c in token):
            words = shell_words(token)
            if words is not None and len(words) > 1:
                found += credentials(words)
                continue
        credential = _assignment(token)
        if credential:
            found.append(credential)
            reported.add(i)
        elif token.startswith("--") and len(token) > 2:
            name, sep, value = token.partition("=")
            if not sep and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                value = tokens[i + 1]
            if value and _names_credential(name) and not _path(value):
                found.append(Credential(name, on_vllm=False))
                reported |= {i, i + 1} if not sep else {i}
        if i not in reported and _CREDENTIAL_VALUE.search(token):
            found.append(Credential("an argument", on_vllm=False))
    return found


def _in_vllm(rest: list[str]) -> list[Credential]:
    found = []
    for given, value in Argv.parse(rest).pairs:
        if not given:
            credential = _assignment(value or "")
            if credential:
                found.append(credential)
            elif value and _CREDENTIAL_VALUE.search(value):
                found.append(Credential("an argument", on_vllm=True))
            continue
        flag = _vllm_flag(given)
        named = is_credential(flag) if flag else _names_credential(given)
        if value and (named or _CREDENTIAL_VALUE.search(value)):
            found.append(Credential(given, on_vllm=True, flag=flag.name if flag else given))
    return found


def _fix(view: ContainerView, found: Credential) -> str:
    key = SECRET_FOR_FLAG.get(found.flag or "") if found.on_vllm else _SECRET_FOR_ENV.get(found.env or "")
    if key:
        reads = f"which vllm reads like {found.flag}" if found.flag else "off every command line"
        return (
            f"remove it and set `pulumi config set --secret {key} <value>`: the container gets it as "
            f"{SECRET_ENV[key]}, {reads}"
        )
    if view.is_vllm:
        if found.env:
            return (
                "remove it from the command and set the variable as a secret instead "
                f"(`pulumi config set --secret --path env.extra.{found.env} <value>`)"
            )
        return (
            "remove it from serve.extraArgs and hand the value over in a secret environment variable "
            "(`pulumi config set --secret --path env.extra.<NAME> <value>`) that vllm reads instead"
        )
    return (
        "remove it and hand the value to the container in a secret environment variable (its envs, "
        "as a Pulumi secret) or in a file it reads"
    )


_PLAIN_TEXT = "where `docker inspect`, `ps` on the node and the Pulumi state show it in plain text"


def _health_check(props: dict) -> list:
    """The health check's argv (`CMD ...` or `CMD-SHELL <line>`), which `docker inspect` and `ps`
    show like the container's own; [] when none or not known yet."""
    check = props.get("healthcheck")
    tests = check.get("tests") if isinstance(check, dict) else None
    if not isinstance(tests, list) or any(not isinstance(t, str) or is_unknown(t) for t in tests):
        return []
    return tests


def check_secret_flags(view: ContainerView, report: Callable[[str], None]) -> None:
    argv = view.command if isinstance(view.command, list) else []
    for found in credentials(argv):
        where = "the vllm serve command line" if found.on_vllm else "the container's command line"
        report(f"{view.who}: {found.shown} passes a credential on {where}, {_PLAIN_TEXT}; {_fix(view, found)}")
    for found in credentials(_health_check(view.props)):
        report(
            f"{view.who}: {found.shown} passes a credential on the container's health check command, {_PLAIN_TEXT}; "
            "remove it and let the check read the value from the container's secret environment through a shell "
            "builtin (`printf 'Authorization: Bearer %s\\n' \"$VLLM_API_KEY\" | curl -H @- ...` in a CMD-SHELL line)"
        )


SECRET_FLAGS = ResourceValidationPolicy(
    name="vllm-no-secrets-on-command-line",
    description="No credential on any container's command line (entrypoint and command) or health check: no --api-key, "
    "--hf-token or other credential flag, no HF_TOKEN=... assignment, no token-looking value.",
    validate=on_container(check_secret_flags),
    enforcement_level=EnforcementLevel.MANDATORY,
)
