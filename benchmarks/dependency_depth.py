"""How deep the chain of resources that wait for one another is, for 2 and 32 A2 nodes, with and
without weights staging: the engine can run in parallel whatever does not wait, so this depth, not
the node count, bounds how many steps a first `pulumi up` takes one after another.

    make benchmark     (runs: PYTHONPATH=.:tests .venv/bin/python benchmarks/dependency_depth.py)
"""

from __future__ import annotations

import sys
from functools import cache

from mocked import Deployment, run_program, stack_settings


def settings(nodes: int, weights: dict | None) -> dict:
    raw = stack_settings("a2")
    raw["nodes"] = [{"name": f"n{i}", "ip": f"192.0.2.{10 + i}", "nic": "eth0"} for i in range(nodes)]
    raw["serve"] = {"dataParallelSize": 2 * nodes}
    if weights is not None:
        raw["weights"] = weights
    return raw


def depth(deployment: Deployment) -> int:
    """Resources on the longest chain of dependencies (components are only groupings)."""
    custom = {r.urn: r for r in deployment.resources if r.custom}

    @cache
    def longest(urn: str) -> int:
        deps = [d for d in custom[urn].dependencies if d in custom]
        return 1 + max((longest(d) for d in deps), default=0)

    return max(longest(urn) for urn in custom)


def main() -> int:
    print("| nodes | weights staging | resources | dependency depth |")
    print("|---:|---|---:|---:|")
    for nodes in (2, 32):
        for label, weights in (
            ("off", None),
            ("each node downloads", {"stage": True}),
            ("shared directory", {"stage": True, "shared": True}),
        ):
            deployment = run_program(settings(nodes, weights), stack="bench")
            assert deployment.error is None, deployment.error
            print(f"| {nodes} | {label} | {len(deployment.resources)} | {depth(deployment)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
