"""Prepare (or remove) the fake Ascend hosts a simulated stack's nodes point at.

    .venv/bin/python sim/local_hosts.py [STACK] [--remove]

Reads Pulumi.<STACK>.yaml (default: local) through the same plan as `pulumi up`, and for every
node creates the fake NPU device nodes and driver files under its hostRoot, and the weights
directory. Needs root (device nodes). Refuses nodes whose hostRoot is the real root.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
sys.path.insert(0, str(PROJECT_DIR / "sim"))

import fake_host  # noqa: E402
from components.plan import plan_cluster  # noqa: E402
from components.stack import config_from_stack_file, stack_file  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", nargs="?", default="local")
    parser.add_argument("--remove", action="store_true", help="delete the fake hosts instead")
    args = parser.parse_args(argv)
    plan = plan_cluster(config_from_stack_file(stack_file(PROJECT_DIR, args.stack)), stack=args.stack)
    real = [n.name for n in plan.nodes if n.host_root == "/"]
    if real:
        raise SystemExit(f"local_hosts: {', '.join(real)} use the real host root; nothing to fake")
    for node in plan.nodes:
        if args.remove:
            fake_host.remove(node.host_root)
        else:
            fake_host.create(node.host_root, node.npus)
            os.makedirs(node.weights_dir, exist_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
