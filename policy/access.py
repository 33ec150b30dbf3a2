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
# A flag whose name has one of these words carries a credential (--api-key, --hf-token), unlike
# --max-num-batched-tokens or --ssl-keyfile (a path).
_CREDENTIAL_WORDS = {"key", "token", "secret", "password", "passwd", "credential", "credentials"}
# Values that are credentials whatever the flag: Hugging Face and OpenAI-style tokens.
_CREDENTIAL_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,})")


def _carries_credential(flag: str, value: str) -> bool:
    words = set(flag.lstrip("-").lower().split("-"))
    return bool(words & _CREDENTIAL_WORDS) or bool(_CREDENTIAL_VALUE.search(value))


def check_secret_flags(view: ContainerView, report: Callable[[str], None]) -> None:
    if not view.argv:
        return
    for flag, value in view.argv.pairs:
        if not value or not _carries_credential(flag, value):
            continue
        shown = flag or "an argument"
        key = _SECRET_FLAGS.get(flag)
        if key:
            fix = (
                f"remove it and set `pulumi config set --secret {key} <value>`: the container gets it as "
                f"{SECRET_ENV[key]}, which vllm reads like {flag}"
            )
        else:
            fix = (
                "remove it from serve.extraArgs and hand the value over in a secret environment variable "
                "(`pulumi config set --secret --path env.extra.<NAME> <value>`) that vllm reads instead"
            )
        report(
            f"node {view.node}: {shown} passes a credential on the vllm serve command line, where "
            f"`docker inspect`, `ps` on the node and the Pulumi state show it in plain text; {fix}"
        )


SECRET_FLAGS = ResourceValidationPolicy(
    name="vllm-no-secrets-on-command-line",
    description="No credential (--api-key, --hf-token, a token-looking value) on the vllm serve command line.",
    validate=on_container(check_secret_flags),
    enforcement_level=EnforcementLevel.MANDATORY,
)
