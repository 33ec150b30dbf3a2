"""How validation errors read: each names its camelCase key, what was wrong and what would be right."""

from __future__ import annotations

import copy
import difflib
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


def describe(error: dict) -> str:
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


def with_defaults_where_invalid(raw: dict[str, Any], errors: list[dict]) -> ClusterConfig | None:
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
