"""The stack configuration: validated in one call, with the reference deployment as every default.

Everything here is pure: the same checks run under `pulumi up` and under `python -m ops.render`.
The keys are defined in models.py, the rules across them in rules.py, the serve flags in
flags.py; this module is the entry point and re-exports the names the rest of the code uses.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .defaults import (
    ACCURACY_MIN_MODEL_LEN,
    AUTO_NIC,
    MULTI_NODE_ENV,
    NETWORK_ENV,
    PROFILES,
    PROJECT,
    SECRET_ENV,
    SECRET_KEYS,
    SINGLE_NODE_ENV,
    TOKEN_ENV,
    WEIGHTS_MOUNT,
    Profile,
)
from .errors import ConfigError, describe, hide_secret_values, one_line_per_key, with_defaults_where_invalid
from .flags import DERIVED_FLAGS, MODEL_FLAGS
from .groups import group_problems, group_topology_problems
from .images import image_reference_problem
from .models import (
    Accuracy,
    Benchmark,
    ClusterConfig,
    Container,
    Env,
    Image,
    Model,
    Node,
    Preflight,
    Serve,
    Ssh,
    Supervision,
    Verify,
    Weights,
    to_snake,
)
from .rules import (
    composed_image_problems,
    front_door_problems,
    node_problems,
    observability_problems,
    setting_problems,
)

__all__ = [
    "ACCURACY_MIN_MODEL_LEN",
    "AUTO_NIC",
    "DERIVED_FLAGS",
    "MODEL_FLAGS",
    "MULTI_NODE_ENV",
    "NETWORK_ENV",
    "PROFILES",
    "PROJECT",
    "SECRET_ENV",
    "SECRET_KEYS",
    "SINGLE_NODE_ENV",
    "TOKEN_ENV",
    "WEIGHTS_MOUNT",
    "Accuracy",
    "Benchmark",
    "ClusterConfig",
    "ConfigError",
    "Container",
    "Env",
    "Image",
    "Model",
    "Node",
    "Preflight",
    "Profile",
    "Serve",
    "Ssh",
    "Supervision",
    "Verify",
    "Weights",
    "image_reference_problem",
    "load_config",
    "to_snake",
]


def load_config(raw: dict[str, Any], secret_keys: frozenset[str] = frozenset()) -> ClusterConfig:
    """Validate a stack's settings (keys without the project prefix) or raise ConfigError with all problems.

    `secret_keys` are the top-level keys Pulumi holds encrypted.
    """
    try:
        cfg, problems, stood_in = ClusterConfig.model_validate(raw), [], frozenset()
    except ValidationError as e:
        problems = one_line_per_key([describe(err, secret_keys) for err in e.errors()])
        fallback = with_defaults_where_invalid(raw, e.errors())
        if fallback is None:
            raise ConfigError([hide_secret_values(p, raw, secret_keys) for p in problems]) from None
        cfg, stood_in = fallback
    # Cross-key rules also run when a key was invalid: a key with a default is judged with its
    # default, a required one is left out of the rules, so a typo and a topology mistake show
    # up in one run; never twice for one key.
    reported = {p.split(":", 1)[0] for p in problems}
    # Without a valid profile there is no hardware to judge the topology or the image tag by.
    hardware = "profile" not in stood_in
    rules = node_problems(cfg, stood_in) + group_problems(cfg) + (group_topology_problems(cfg) if hardware else [])
    rules += setting_problems(cfg, secret_keys) + front_door_problems(cfg) + observability_problems(cfg)
    rules += composed_image_problems(cfg) if hardware else []
    problems += [p for p in rules if p.split(":", 1)[0] not in reported]
    problems = [hide_secret_values(p, raw, secret_keys) for p in problems]
    if problems:
        raise ConfigError(problems)
    cfg._secret_keys = secret_keys
    return cfg
