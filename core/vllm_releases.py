"""Which vllm each vllm-ascend release is built on: how the stack's image picks the table of
`vllm serve` flags that validation, the plan and the simulator read the command line with.

Source: vllm-project/vllm-ascend, docs/source/community/versioning_policy.md (its release
compatibility matrix: v0.13.0 on vllm 0.13.0, v0.18.0 on 0.18.0, v0.23.0 on 0.23.0). Every vllm
here has its table, core/vllm_flags_<version>.json, from scripts/gen_vllm_flags.py; supporting a
release means adding its row here and generating its table.
"""

from __future__ import annotations

# vllm-ascend release (the image tag before any build suffix) -> the vllm it runs.
RELEASES = {
    "v0.13.0": "0.13.0",
    "v0.18.0": "0.18.0",
    "v0.23.0": "0.23.0",
}
SUPPORTED_VLLM = tuple(sorted(set(RELEASES.values()), key=lambda v: tuple(map(int, v.split(".")))))


def release_of(tag: str) -> str | None:
    """The vllm-ascend release an image tag names, or None. vllm-ascend tags each build as its
    release plus a suffix (v0.18.0-a3, v0.18.0-openeuler), so the release is the tag up to its
    first '-'; an rc or a site's own tag names none."""
    release = tag.split("-", 1)[0]
    return release if release in RELEASES else None


def tag_of(reference: str) -> str:
    """The tag of a Docker reference ([host[:port]/]path[:tag][@digest]); '' when it has none."""
    name = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.partition(":")[2]
