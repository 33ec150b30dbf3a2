"""Dry run: print, per node, the shell script a person could run by hand for a stack.

    python -m ops.render a2 [--node NAME]

Reads Pulumi.<stack>.yaml, validates it exactly as `pulumi up` does, and needs neither the
Pulumi CLI nor Ascend hardware. Secrets are never printed: the script reads them from the
environment of whoever runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.render import render
from core.stack import StackFileError, plan_from_stack_file, stack_file

PROJECT_DIR = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--node", help="print only this node's script")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR, help="where Pulumi.<stack>.yaml lives")
    args = parser.parse_args(argv)
    try:
        deployment = plan_from_stack_file(args.project_dir, args.stack)
    except StackFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    nodes = [n.name for plan in deployment.groups for n in plan.nodes]
    if args.node and args.node not in nodes:
        names = ", ".join(nodes)
        print(
            f"error: no node '{args.node}' in {stack_file(args.project_dir, args.stack).name}; nodes are: {names}",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(render(deployment, args.node))
    return 0


if __name__ == "__main__":
    sys.exit(main())
