"""The deepseek-r1-ascend policy pack: `pulumi preview --policy-pack policy`.

Constructing a PolicyPack starts the analyzer server and never returns, so the policies live in
policies.py (and the modules it lists), where the tests import them.
"""

import sys
from pathlib import Path

# Pulumi runs this file from the pack's folder: make the pack's modules and the project's core/
# (the facts the policies share with the program) importable. The only sys.path edit of the pack.
_PACK = Path(__file__).resolve().parent
sys.path[:0] = [str(_PACK), str(_PACK.parent)]

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies import POLICIES  # noqa: E402

PolicyPack(
    name="deepseek-r1-ascend",
    policies=POLICIES,
    # Each policy sets its own level; this only covers a policy that does not.
    enforcement_level=EnforcementLevel.MANDATORY,
)
