"""Prepare (or remove) the fake Ascend hosts a simulated stack's nodes point at.

    .venv/bin/python -m sim.local_hosts [STACK] [--remove]

Reads Pulumi.<STACK>.yaml (default: local) through the same plan as `pulumi up`, and for every
node creates the fake NPU device nodes and driver files under its hostRoot, and the weights
directory. Needs root (device nodes). Refuses nodes whose hostRoot is the real root.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.stack import plan_from_stack_file
from sim import fake_host

PROJECT_DIR = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", nargs="?", default="local")
    parser.add_argument("--remove", action="store_true", help="delete the fake hosts instead")
    args = parser.parse_args(argv)
    nodes = [n for plan in plan_from_stack_file(PROJECT_DIR, args.stack).groups for n in plan.nodes]
    real = [n.name for n in nodes if n.host_root == "/"]
    if real:
        raise SystemExit(f"local_hosts: {', '.join(real)} use the real host root; nothing to fake")
    for node in nodes:
        if args.remove:
            fake_host.remove(node.host_root)
        else:
            fake_host.create(node.host_root, node.npus)
            os.makedirs(node.weights_dir, exist_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
