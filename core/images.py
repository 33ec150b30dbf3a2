"""Image references: which ones name a fixed version Docker can pull."""

from __future__ import annotations

import re

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def tag_problem(tag: str) -> str | None:
    """Why image.tag is not a pinned Docker tag, or None."""
    if tag == "latest":
        return "'latest' moves between releases; pin a version tag such as v0.18.0"
    if not _TAG.match(tag):
        return f"'{tag}' is not a Docker tag; pin a version tag such as v0.18.0"
    return None


def image_reference_problem(ref: str) -> str | None:
    """Why an image reference is not pinned, or None when it names a fixed version."""
    if _DIGEST.search(ref):
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"'{ref}' has no tag; pin a version tag such as :v0.18.0 or a @sha256: digest"
    tag = last.split(":", 1)[1]
    if tag == "latest":
        return f"'{ref}' uses the moving tag 'latest'; pin a version tag such as :v0.18.0 or a @sha256: digest"
    if not _TAG.match(tag):
        return f"'{ref}' has an invalid tag '{tag}'; use letters, digits, '.', '_' or '-'"
    return None
