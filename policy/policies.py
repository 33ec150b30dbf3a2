"""The guardrails of deepseek-r1-ascend, as CrossGuard policies: the pack's index.

Everything here is importable without starting a policy server (`__main__.py` builds the pack),
so the tests run each policy on the mocked resource graph of every shipped stack. The policies
live by concern, each validator right above its policy object: `isolation.py`, `access.py`,
`workload.py`, `provenance.py`, `dpgroup.py`, `nodenet.py`; `props.py` reads resource props for
all of them.

The facts the pack shares with the program (driver paths, management devices, what a pinned
image is, the label prefix) are imported from `core/`, so the pack's virtualenv installs the
program's pydantic too (policy/requirements.txt).
"""

from access import OPEN_API, SECRET_FLAGS
from dpgroup import DP_GROUP, ONE_IMAGE
from isolation import HOST_ISOLATION, PRIVILEGES, SYSTEM_DIRS_READ_ONLY, SYSTEM_DIRS_WRITABLE
from nodenet import NODE_NETWORK
from props import CONTAINER, REMOTE_IMAGE
from provenance import HOST_KEY_PINNED, IMAGE_PINNED
from workload import HOST_NETWORK, NPU_DEVICES, SHM_SIZE, W8A8_SERVE_FLAGS

__all__ = ["CONTAINER", "POLICIES", "REMOTE_IMAGE"]

POLICIES = [
    HOST_ISOLATION,
    IMAGE_PINNED,
    SHM_SIZE,
    HOST_NETWORK,
    NPU_DEVICES,
    W8A8_SERVE_FLAGS,
    HOST_KEY_PINNED,
    DP_GROUP,
    ONE_IMAGE,
    OPEN_API,
    PRIVILEGES,
    SYSTEM_DIRS_WRITABLE,
    SYSTEM_DIRS_READ_ONLY,
    SECRET_FLAGS,
    NODE_NETWORK,
]
