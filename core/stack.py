"""Where a stack's settings come from: the running Pulumi program, or a Pulumi.<stack>.yaml file.

Both hand the same raw settings to `load_config`, so `pulumi up` and the dry-run renderer
accept and refuse exactly the same stacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .config import PROJECT, SECRET_KEYS, ClusterConfig, ConfigError, load_config
from .deployment import Deployment, plan_deployment

_PREFIX = f"{PROJECT}:"
# What the renderer shows instead of a secret it cannot (and must not) decrypt.
SECRET_PLACEHOLDER = "<secret>"


def _decode(value: Any) -> Any:
    # The engine hands structured values over as JSON text, scalars as plain text.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def config_from_pulumi() -> ClusterConfig:
    """The running program's stack config (only this project's namespace; unknown keys are errors)."""
    from pulumi import runtime

    keys = set(runtime.config.CONFIG.get()) | set(runtime.get_config_env())
    secret = set(runtime.get_config_secret_keys_env())
    raw, secret_keys = {}, set()
    for full_key in sorted(keys):
        if not full_key.startswith(_PREFIX):
            continue
        key = full_key[len(_PREFIX) :]
        value = runtime.get_config(full_key)
        # A secret is text as typed: decoding "123" or "null" would change (or erase) it.
        raw[key] = value if key in SECRET_KEYS else _decode(value)
        if full_key in secret or runtime.is_config_secret(full_key):
            secret_keys.add(key)
    return load_config(raw, frozenset(secret_keys))


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


class StackFileError(Exception):
    """A stack file that is missing or whose config is refused; the message names the file."""


def plan_from_stack_file(project_dir: Path, stack: str) -> Deployment:
    """The plan of Pulumi.<stack>.yaml, as the command-line tools (render, diagnose) read it."""
    path = stack_file(project_dir, stack)
    if not path.exists():
        raise StackFileError(f"no stack file {path.name}")
    try:
        return plan_deployment(config_from_stack_file(path), stack=stack)
    except ConfigError as e:
        raise StackFileError(f"{path.name}: {e}") from e


def config_from_stack_file(path: Path) -> ClusterConfig:
    """A stack file's config, with encrypted values replaced by a placeholder."""
    document = yaml.safe_load(path.read_text()) or {}
    raw, secret_keys = {}, set()
    for full_key, value in (document.get("config") or {}).items():
        key = full_key[len(_PREFIX) :] if full_key.startswith(_PREFIX) else None
        if key is None:
            continue
        value, secret = _without_ciphertext(value)
        if secret:
            secret_keys.add(key)
        raw[key] = value
    return load_config(raw, frozenset(secret_keys))


def _without_ciphertext(value: Any) -> tuple[Any, bool]:
    """The value with every `secure:` entry (`pulumi config set --secret [--path]`) replaced."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        return SECRET_PLACEHOLDER, True
    if isinstance(value, dict):
        pairs = {k: _without_ciphertext(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_without_ciphertext(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False
