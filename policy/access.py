"""Access: who can use a serving container's API, and who can read the keys it is given."""

from __future__ import annotations

import re
from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from core.config import SECRET_ENV, to_snake
from core.vllm_args import ArgError, load_table, normalise, resolve
from props import ContainerView, is_unknown, on_container, stack_views

_ALL_INTERFACES = {"0.0.0.0", "::", "[::]", ""}


def validate_open_api(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for v in stack_views(args):
        if not v.is_vllm or v.headless:
            continue
        host = v.argv.get("--host")
        if host is not None and host not in _ALL_INTERFACES:
            continue
        if v.argv.has("--api-key"):
            continue
        key = v.env(SECRET_ENV["apiKey"])
        if is_unknown(key) or (isinstance(key, str) and key):
            continue
        port = v.argv.get("--port") or "8000"
        report_violation(
            f"node {v.node}: the OpenAI API listens on {host or '0.0.0.0'}:{port} without --api-key or "
            "VLLM_API_KEY, so anyone who reaches the node can use it; set a key with "
            "`pulumi config set --secret apiKey <key>` or listen on a private address (serve.host)",
            v.urn,
        )


OPEN_API = StackValidationPolicy(
    name="vllm-api-key-on-open-api",
    description="An API listening on all interfaces requires an API key (--api-key or VLLM_API_KEY).",
    validate=validate_open_api,
    enforcement_level=EnforcementLevel.ADVISORY,
)


# The flag of each secret the program passes as an environment variable (--api-key for apiKey):
# vllm reads each of those variables like its flag.
_SECRET_FLAGS = {"--" + to_snake(key).replace("_", "-"): key for key in SECRET_ENV}
# A text flag whose name has one of these words carries a credential (--api-key, --hf-token),
# unlike --ssl-keyfile (a path) or --long-prefill-token-threshold (a number).
_CREDENTIAL_WORDS = {"key", "token", "secret", "password", "passwd", "credential", "credentials"}
_TEXT_KINDS = {"str", "json-or-str"}
# Values that are credentials whatever the flag: Hugging Face and OpenAI-style tokens.
_CREDENTIAL_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,})")


def _vllm_flag(flag: str) -> tuple[str, str | None]:
    """The flag's full name and value kind as vllm reads it (a unique prefix or an underscore
    spelling names the same flag); the flag as given and no kind when vllm does not know it."""
    try:
        option = resolve(normalise(flag), load_table())
    except ArgError:
        option = None
    return (option.flag.name, option.flag.kind) if option else (flag, None)


def _carries_credential(name: str, kind: str | None, value: str) -> bool:
    named = bool(set(name.lstrip("-").lower().split("-")) & _CREDENTIAL_WORDS) and kind in (None, *_TEXT_KINDS)
    return named or bool(_CREDENTIAL_VALUE.search(value))


def _fix(name: str) -> str:
    key = _SECRET_FLAGS.get(name)
    if key:
        return (
            f"remove it and set `pulumi config set --secret {key} <value>`: the container gets it as "
            f"{SECRET_ENV[key]}, which vllm reads like {name}"
        )
    return (
        "remove it from serve.extraArgs and hand the value over in a secret environment variable "
        "(`pulumi config set --secret --path env.extra.<NAME> <value>`) that vllm reads instead"
    )


def check_secret_flags(view: ContainerView, report: Callable[[str], None]) -> None:
    if not view.argv:
        return
    for flag, value in view.argv.pairs:
        name, kind = _vllm_flag(flag) if flag else ("", None)
        if value and _carries_credential(name, kind, value):
            report(
                f"node {view.node}: {flag or 'an argument'} passes a credential on the vllm serve command "
                "line, where `docker inspect`, `ps` on the node and the Pulumi state show it in plain "
                f"text; {_fix(name)}"
            )


SECRET_FLAGS = ResourceValidationPolicy(
    name="vllm-no-secrets-on-command-line",
    description="No credential (--api-key, --hf-token, a token-looking value) on the vllm serve command line.",
    validate=on_container(check_secret_flags),
    enforcement_level=EnforcementLevel.MANDATORY,
)
