"""The deepseek-r1-ascend policy pack: `pulumi preview --policy-pack policy`.

Constructing a PolicyPack starts the analyzer server and never returns, so the policies live in
policies.py, where the tests import them.
"""

import os
import sys

# Pulumi runs this file from the pack directory; make its sibling module importable either way.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies import POLICIES  # noqa: E402

PolicyPack(
    name="deepseek-r1-ascend",
    policies=POLICIES,
    # Each policy sets its own level; this only covers a policy that does not.
    enforcement_level=EnforcementLevel.MANDATORY,
)
