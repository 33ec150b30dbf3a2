"""The dependency graph as the cluster grows, for 2, 8 and 32 A2 nodes, with and without weights
staging, and for 1, 2 and 4 groups of two A2 nodes behind the router: how many resources and
dependency edges the engine walks, how deep the chain of resources that wait for one another is,
and how long the mocked program takes to preview.

Each group behind the router adds two links to the chain (its containers wait for the previous
group's router membership); on a first `pulumi up` each membership returns at once, since no
group serves yet, so the groups still load their weights at the same time (docs/groups.md).

The engine runs in parallel whatever does not wait, so the depth, not the node count, bounds how
many steps a first `pulumi up` takes one after another; the edges are what it (and the program)
must track, so they must grow with the nodes, not with their square.

    make benchmark     (runs: PYTHONPATH=.:tests .venv/bin/python benchmarks/dependency_depth.py [--repeat N])

Times are for this machine; compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from mocked import Deployment, run_program, stack_settings

SIZES = (2, 8, 32)
WEIGHTS = (
    ("off", None),
    ("each node downloads", {"stage": True}),
    ("shared directory", {"stage": True, "shared": True}),
)


def settings(nodes: int, weights: dict | None) -> dict:
    raw = stack_settings("a2")
    raw["nodes"] = [{"name": f"n{i}", "ip": f"192.0.2.{10 + i}", "nic": "eth0"} for i in range(nodes)]
    raw["serve"] = {"dataParallelSize": 2 * nodes}
    if weights is not None:
        raw["weights"] = weights
    return raw


GROUPS = (1, 2, 4)


def grouped(groups: int) -> dict:
    """`groups` groups of two A2 nodes (one group: the plain a2 stack)."""
    if groups == 1:
        return stack_settings("a2")
    raw = stack_settings("a2-groups")
    names = [f"g{g}" for g in range(groups)]
    raw["nodes"] = [
        {"name": f"{name}-{i}", "ip": f"192.0.2.{10 + 2 * g + i}", "nic": "eth0"}
        for g, name in enumerate(names)
        for i in range(2)
    ]
    raw["groups"] = [{"name": name, "nodes": [f"{name}-0", f"{name}-1"]} for name in names]
    return raw


def preview(raw: dict, repeat: int) -> tuple[Deployment, float]:
    """The previewed deployment and the median wall time of its mocked program, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        deployment = run_program(raw, stack="bench", preview=True)
        times.append((time.perf_counter() - start) * 1000)
        assert deployment.error is None, deployment.error
    return deployment, statistics.median(times)


def measured(stacks: list[dict], repeat: int) -> dict[str, list[str]]:
    """Per measure, its value for each stack's preview."""
    rows: dict[str, list[str]] = {"resources": [], "dependency edges": [], "dependency depth": [], "preview ms": []}
    for raw in stacks:
        deployment, ms = preview(raw, repeat)
        rows["resources"].append(str(len(deployment.resources)))
        rows["dependency edges"].append(f"{deployment.dependency_edges():,}")
        rows["dependency depth"].append(str(deployment.dependency_depth()))
        rows["preview ms"].append(f"{ms:.0f}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| weights staging | measure | " + " | ".join(f"{n} nodes" for n in SIZES) + " |")
    print("|---|---|" + "---:|" * len(SIZES))
    for label, weights in WEIGHTS:
        for measure, values in measured([settings(n, weights) for n in SIZES], args.repeat).items():
            print(f"| {label} | {measure} | " + " | ".join(values) + " |")
    print()
    print("| measure | " + " | ".join(f"{g} group{'s' if g > 1 else ''}" for g in GROUPS) + " |")
    print("|---|" + "---:|" * len(GROUPS))
    for measure, values in measured([grouped(g) for g in GROUPS], args.repeat).items():
        print(f"| {measure} | " + " | ".join(values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
