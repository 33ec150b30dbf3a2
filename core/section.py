"""What every section of the stack configuration shares: strict camelCase keys, absolute paths,
and text without control characters."""

from __future__ import annotations

import ipaddress
import posixpath
import re

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# A host or container path: it becomes a `docker -v host:container` argument, a `mkdir`, a
# `PATH=` entry, so ':' (Docker's separator), blanks, quotes and every other shell metacharacter
# are refused along with control characters. Matched against the whole value.
_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
# C0 controls (line breaks, tab, NUL, ESC ...), DEL and the C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Section(BaseModel):
    # Unknown keys are errors: a typo must never fall back silently to a default.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


def no_control_characters(value: str) -> str:
    """Text that goes into a command line or a script's comment: a line break there would start
    a new command, an escape sequence would rewrite the terminal."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(f"holds the control character {found.group()!r} (a line break, tab or other); remove it")
    return value


def absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path; use a path starting with /")
    if not _PATH.fullmatch(value):
        bad = sorted({c for c in value if not _PATH.fullmatch("/" + c)})
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(
            f"{value!r} holds {shown}; use a path of letters, digits and '.', '_', '+', '@', '-', '/' only"
        )
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"{value!r} has a '.' or '..' component; use the path it stands for")
    return value


# Trees of the host system: no directory in them, however deep, is data a container may own.
# /root holds root's keys and shell start-up files, /tmp and /var/tmp are writable by every user
# (a path there can be swapped for a link between two commands), the rest are programs,
# configuration, devices, kernel interfaces and the container engines' own state.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/run",
    "/sbin", "/sys", "/tmp", "/usr", "/var/lib/containerd", "/var/lib/docker", "/var/run", "/var/spool",
    "/var/tmp",
)  # fmt: skip
# Roots whose subdirectories belong to others (users, packages, services, mounted disks): the
# root itself and each directory directly under it are refused, a directory deeper down is a
# deployment's own (the default /var/lib/deepseek-r1-ascend/prometheus).
SHARED_ROOTS = ("/home", "/media", "/mnt", "/opt", "/srv", "/var")


def _inside(tree: str, path: str) -> bool:
    return path == tree or path.startswith(tree + "/")


def system_tree(path: str) -> str | None:
    """The SYSTEM_TREES tree a normalized absolute `path` is or lies in."""
    return next((t for t in SYSTEM_TREES if _inside(t, path)), None)


def system_directory(path: str) -> bool:
    """Whether a normalized absolute `path` is the host's rather than a deployment's own: `/` and
    every top-level directory, everything in SYSTEM_TREES, and the directories directly under
    SHARED_ROOTS."""
    return system_tree(path) is not None or path.count("/") <= 1 or posixpath.dirname(path) in SHARED_ROOTS


def ip_address(v: str, use: str, what: str = "an IP address") -> str:
    """An IP address in its normal form, or ValueError saying what to `use` instead. An IPv6
    scope ID (`fe80::1%eth0`) is refused: Python accepts any text after the '%', shell code
    included, and a link-local address cannot carry the group's traffic anyway."""
    if "%" in v:
        raise ValueError(f"{v!r} has an IPv6 scope ID, which is not supported; {use}, without '%...'")
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        raise ValueError(f"{v!r} is not {what}; {use}") from None
