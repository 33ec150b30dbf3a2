"""Image references read the way Docker parses them, and pinned to a fixed version.

Docker's reference grammar: [host[:port]/]path[:tag][@sha256:<64 hex>], where host is a DNS
name, an IPv4 address or a bracketed IPv6 address; each path component is lowercase letters and
digits joined by '.', '_', '__' or dashes; a tag is at most 128 letters, digits, '_', '.' and
'-', not starting with '.' or '-'; the name is at most 255 characters. A reference Docker would
refuse is refused here with the nearest form it would accept, before any node pulls it.
"""

from __future__ import annotations

import re

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])"
_DOMAIN = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
MAX_NAME = 255
PIN_HINT = "pin a version tag such as v0.18.0"


def _domain_problem(domain: str) -> str | None:
    if not _DOMAIN.fullmatch(domain):
        return f"'{domain}' is not a registry host (host or host:port, e.g. quay.io or registry.local:5000)"
    return None


def _path_problem(path: str) -> str | None:
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            return (
                f"'{component}' is not a Docker path component (lowercase letters and digits joined by '.', '_' or '-')"
            )
    return None


def _looks_like_domain(component: str) -> bool:
    # Docker's own rule for whether a reference's first component names a registry.
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def names_registry(ref: str) -> bool:
    """Whether a reference names its registry (otherwise Docker pulls it from Docker Hub)."""
    first, slash, _ = ref.partition("/")
    return bool(slash) and _looks_like_domain(first)


def _nearest_name(text: str) -> str:
    text = _SCHEME.sub("", text.strip()).strip("/")
    first, sep, rest = text.partition("/")
    if sep and _looks_like_domain(first):
        return f"{first}/{rest.lower()}"
    return text.lower()


def _shown(problem: str, value: str, nearest: str, check) -> str:
    """The problem, with the nearest form Docker accepts when cleaning the value up gives one."""
    if nearest and nearest != value and check(nearest) is None:
        return f"{problem}; use '{nearest}'"
    return problem


def _name_problem(name: str, allow_domain: bool) -> str | None:
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; Docker allows at most {MAX_NAME} in an image name"
    first, sep, rest = name.partition("/")
    if allow_domain and sep and _looks_like_domain(first):
        return _domain_problem(first) or _path_problem(rest)
    return _path_problem(name)


def _whitespace(key_value: str) -> str | None:
    if key_value != key_value.strip():
        return f"{key_value!r} has spaces around it, which Docker refuses; use '{key_value.strip()}'"
    return None


def registry_problem(registry: str) -> str | None:
    """Why image.registry is not a registry Docker accepts: host[:port], then optional path."""
    if registry == "":
        return None
    problem = _whitespace(registry)
    if problem:
        return problem
    nearest = _nearest_name(registry)
    if _SCHEME.match(registry):
        problem = f"'{registry}' has a URL scheme, which Docker references do not take"
        return _shown(problem, registry, nearest, registry_problem)
    if registry.endswith("/"):
        return _shown(f"'{registry}' ends with '/'", registry, nearest, registry_problem)
    domain, _, path = registry.partition("/")
    problem = _domain_problem(domain) or (_path_problem(path) if path else None)
    if problem:
        return _shown(f"'{registry}': {problem}", registry, nearest, registry_problem)
    if not _looks_like_domain(domain):
        return (
            f"'{domain}' has no '.' or ':', so Docker would take it for a path on Docker Hub; "
            f"use the registry's full host name or host:port, e.g. {domain}.example.com or {domain}:5000"
        )
    return None


def repository_problem(repository: str) -> str | None:
    """Why image.repository is not a Docker repository path (the registry goes in image.registry)."""
    problem = _whitespace(repository)
    if problem:
        return problem
    problem = _path_problem(repository)
    if problem:
        nearest = repository.lower().strip("/")
        shown = f"'{repository}': {problem}"
        return f"{shown}; use '{nearest}'" if nearest != repository and not _path_problem(nearest) else shown
    return None


def tag_problem(tag: str) -> str | None:
    """Why image.tag is not a pinned Docker tag, or None."""
    problem = _whitespace(tag)
    if problem:
        return problem
    if tag == "latest":
        return f"'latest' moves between releases; {PIN_HINT}"
    if not _TAG.fullmatch(tag):
        return (
            f"'{tag}' is not a Docker tag: at most 128 letters, digits, '_', '.' and '-', not starting "
            f"with '.' or '-'; {PIN_HINT}"
        )
    return None


def image_reference_problem(ref: str) -> str | None:
    """Why a whole image reference is not one Docker parses and pins, or None."""
    problem = _whitespace(ref)
    if problem:
        return problem
    rest, at, digest = ref.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        return (
            f"'{ref}' has the digest '{digest}'; a digest is sha256: and 64 lowercase hex characters, "
            "as `docker inspect --format '{{.RepoDigests}}'` prints it"
        )
    name, tag = rest, None
    last_slash = rest.rfind("/")
    if ":" in rest[last_slash + 1 :]:
        name, tag = rest[: rest.rfind(":")], rest[rest.rfind(":") + 1 :]
    if _SCHEME.match(ref):
        problem = f"'{ref}' has a URL scheme, which Docker references do not take"
        return _shown(problem, ref, _nearest_name(name) + ref[len(name) :], image_reference_problem)
    problem = _name_problem(name, allow_domain=True)
    if problem:
        return _shown(f"'{ref}': {problem}", ref, _nearest_name(name) + ref[len(name) :], image_reference_problem)
    if tag is not None and not _TAG.fullmatch(tag):
        return f"'{ref}' has an invalid tag '{tag}'; use letters, digits, '.', '_' or '-'"
    if not at and tag is None:
        return f"'{ref}' has no tag; pin a version tag such as :v0.18.0 or a @sha256: digest"
    if not at and tag == "latest":
        return f"'{ref}' uses the moving tag 'latest'; pin a version tag such as :v0.18.0 or a @sha256: digest"
    return None


def pinned_image(reference: str | None) -> str | None:
    """A validator's check of an image reference: ValueError naming the problem, else the reference."""
    problem = image_reference_problem(reference) if reference is not None else None
    if problem:
        raise ValueError(problem)
    return reference
