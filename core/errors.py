"""How validation errors read: each names its camelCase key, what was wrong and what would be right."""

from __future__ import annotations

import copy
import difflib
import ipaddress
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from .defaults import SECRET_KEYS
from .models import ClusterConfig


class ConfigError(Exception):
    """Every problem in a stack's configuration, each as `config.path: what is wrong; what would be right`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration for deepseek-r1-ascend:\n" + "\n".join(f"  - {p}" for p in problems))


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


def describe(error: dict, secret_keys: frozenset[str] = frozenset()) -> str:
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
    top = error["loc"][0] if error["loc"] else None
    if top in SECRET_KEYS or top in secret_keys:
        # Never the value, nor a validator's message (which may quote it): only the shape expected.
        hidden = f"the value is hidden because {top} is a secret"
        if kind == "value_error":
            return f"{path}: expected {_shape(_key_loc(error['loc']))}; {hidden}"
        return f"{path}: {hidden}; {message[0].lower()}{message[1:]}"
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        return f"{path}: {message}"
    if _may_hold_credentials(error["loc"]):
        shown = f"{_kind(error['input'])} (not shown: it may hold a credential)"
        return f"{path}: got {shown}; {message[0].lower()}{message[1:]}"
    shown = repr(error["input"])
    if kind == "literal_error":
        return f"{path}: {shown} is not allowed; {message[0].lower()}{message[1:]}"
    return f"{path}: got {shown}; {message[0].lower()}{message[1:]}"


# Keys handed to the containers as given, where a site may put a credential: serve.extraArgs onto
# the vllm command line (`--hf-token hf_...`), env into the environment (a token variable).
_VERBATIM = (("serve", "extraArgs"), ("env",))


def _may_hold_credentials(loc: tuple) -> bool:
    """The value at `loc` is, or holds, one of those keys (a malformed `serve` holds extraArgs)."""
    keys = tuple(part for part in loc if isinstance(part, str))
    return any(keys[: len(key)] == key or key[: len(keys)] == keys for key in _VERBATIM)


_KINDS = {str: "text", int: "a number", float: "a number", bool: "a boolean", list: "a list", dict: "a mapping"}


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


# What some keys hold, beyond their type: the rules across keys that a value must also meet. An
# error about a key under a secret shows only this (the rule's own words would quote the value).
_SHAPES = {
    ("nodes", "name"): "a node name unique across nodes (1-40 lowercase letters, digits and '-')",
    ("nodes", "ip"): "the IP address of the node's NIC, unique across nodes and of the same family as nodes[0].ip",
    ("nodes", "containerName"): "a container name unique on its Docker host",
    ("nodes", "hostRoot"): "an absolute path, unique on its Docker host",
    ("nodes", "renamedFrom"): "the former name of this node, which no node has any more",
    ("serve", "extraArgs"): "vllm serve arguments vllm accepts, one flag or value per item, none that the config "
    "sets itself (docs/configuration.md) and no credential (use the apiKey and hfToken secrets)",
}


def _shape(loc: tuple) -> str:
    """What a key holds, in words, from its type (for errors that must not show the value)."""
    keys = tuple(part for part in loc if isinstance(part, str))
    if keys[:1] == ("env",):
        return "a mapping of environment variable names (letters, digits and '_') to strings, numbers or booleans"
    if keys[:2] in _SHAPES:
        return _SHAPES[keys[:2]]
    model = _section(loc)
    name = next((p for p in reversed(loc) if isinstance(p, str)), None)
    field = next((f for f in model.model_fields.values() if f.alias == name), None) if model else None
    if field is None:
        return "a value of the documented form"
    return _type_words(field.annotation, f"a valid {name}")


def _type_words(annotation: Any, scalar: str) -> str:
    origin = getattr(annotation, "__origin__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"a mapping with the keys {', '.join(f.alias for f in annotation.model_fields.values())}"
    if origin is list:
        return f"a list of {_type_words(annotation.__args__[0], scalar)}"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "a whole number", float: "a number"}.get(annotation, scalar)


def hide_secret_values(problem: str, raw: dict[str, Any], secret_keys: frozenset[str]) -> str:
    """A problem about a key under a secret, without any fragment of the secret's value.

    Under a key the user set with `--secret` (say `serve` or `nodes`), the message is the key's path
    and the shape it expects, nothing else: a rule's own words quote what they found (a flag and
    its value, an address), and no masking can tell every fragment of a value apart. Under a named
    secret (apiKey, ...), whose rules quote no value, every value under it is masked all the same.
    """
    top = re.split(r"[.\[:]", problem, maxsplit=1)[0]
    if top not in secret_keys and top not in SECRET_KEYS:
        return problem
    head, _, text = problem.partition(": ")
    hidden = f"the value is hidden because {top} is a secret"
    if top not in SECRET_KEYS:
        if hidden in text:
            # Already only the shape (a pydantic error, see `describe`).
            return problem
        return f"{head}: expected {_shape(_path_loc(head))}; {hidden} (and so is the rest of this problem, which would quote it)"
    for value in sorted(set(_leaves(raw.get(top))), key=len, reverse=True):
        text = re.sub(rf"(?<![\w.:-]){re.escape(value)}(?![\w.:-])", "<hidden>", text)
    return f"{head}: {text}"


def _path_loc(path: str) -> tuple:
    """`nodes[1].ip` as the location pydantic would give: ('nodes', 1, 'ip')."""
    return tuple(int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", path))


def _leaves(value: Any):
    """Every scalar under a value, as text, and as validation normalises it (IP addresses)."""
    if isinstance(value, dict | list):
        for inner in value.values() if isinstance(value, dict) else value:
            yield from _leaves(inner)
    elif value is not None and str(value):
        yield str(value)
        try:
            yield str(ipaddress.ip_address(str(value).strip()))
        except ValueError:
            pass


def one_line_per_key(problems: list[str]) -> list[str]:
    """A value that fits none of a key's accepted types gets one line naming them all."""
    merged: dict[str, str] = {}
    for problem in problems:
        key = problem.split(":", 1)[0]
        if key in merged:
            merged[key] += " or " + problem.rsplit("input should be ", 1)[-1]
        else:
            merged[key] = problem
    return list(merged.values())


# Stand-ins for required keys that failed their own check, so the rules across nodes and keys
# still judge everything else; the rules leave the stand-ins out (see rules.node_problems).
_STAND_INS = {"profile": "atlas-800-a2", "name": "invalid-node", "ip": "192.0.2.1", "nic": "invalid"}


def with_defaults_where_invalid(raw: dict[str, Any], errors: list[dict]) -> tuple[ClusterConfig, frozenset[str]] | None:
    """The config with every invalid or unknown key dropped (or, if required, stood in for), and
    the paths of the keys stood in for; None if some key can neither be dropped nor stood in for."""
    trimmed, stood_in = copy.deepcopy(raw), set()
    for error in errors:
        loc = error["loc"] if error["type"] == "extra_forbidden" else _key_loc(error["loc"])
        loc = loc[: max(i for i, part in enumerate(loc) if isinstance(part, str)) + 1]
        model = _section(loc)
        field = next((f for f in model.model_fields.values() if f.alias == loc[-1]), None) if model else None
        required = error["type"] != "extra_forbidden" and (field is None or field.is_required())
        if required and loc[-1] not in _STAND_INS:
            return None
        try:
            parent = trimmed
            for part in loc[:-1]:
                parent = parent[part]
            if required:
                parent[loc[-1]] = _STAND_INS[loc[-1]]
                stood_in.add(_loc_path(loc))
            else:
                parent.pop(loc[-1], None)
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    try:
        return ClusterConfig.model_validate(trimmed), frozenset(stood_in)
    except ValidationError:
        return None
