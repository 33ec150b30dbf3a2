#!/usr/bin/env python3
"""The container's entrypoint: the group supervisor in front of the `vllm serve` argv it is given.

Placed into the container beside the package `supervision` (core/supervision.py), so this file's
own directory, first on Python's path, is where the package is found.
"""

import sys

from supervision.supervisor import main

sys.exit(main(sys.argv[1:]))
