"""How long validation, planning, rendering and a mocked `pulumi up` program take, and their peak
memory, as the cluster grows (A2 nodes, 2 data-parallel ranks per node).

    make benchmark     (runs: PYTHONPATH=.:tests .venv/bin/python benchmarks/plan_and_program.py [--repeat N])

Numbers are for this machine; compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

from mocked import run_program, stack_settings

from core.config import load_config
from core.deployment import plan_deployment
from core.render import render


def settings(nodes: int) -> dict:
    raw = stack_settings("a2")
    raw["nodes"] = [{"name": f"n{i}", "ip": f"192.0.2.{10 + i}", "nic": "eth0"} for i in range(nodes)]
    raw["serve"] = {"dataParallelSize": 2 * nodes}
    return raw


def measure(fn, repeat: int) -> tuple[float, float]:
    """(median milliseconds, peak MiB of Python allocations) over `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| nodes | validate+plan+render ms | peak MiB | mocked program ms | resources | peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for nodes in (2, 4, 8, 16):
        raw = settings(nodes)
        plan_ms, plan_mib = measure(lambda raw=raw: render(plan_deployment(load_config(raw), "bench")), args.repeat)
        deployment = run_program(raw, stack="bench")
        assert deployment.error is None, deployment.error
        prog_ms, prog_mib = measure(lambda raw=raw: run_program(raw, stack="bench"), max(1, args.repeat // 2))
        print(
            f"| {nodes} | {plan_ms:.1f} | {plan_mib:.1f} | {prog_ms:.0f} | {len(deployment.resources)} | {prog_mib:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
