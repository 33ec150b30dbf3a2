"""Once the group serves: does every node's supervisor see the head's API and every peer's
supervisor? A firewall that lets the API through to clients but not between the nodes (or the
supervision port not at all) leaves the supervisors blind: they would hold a restart forever at
the barrier and never count the group as served. Found here, `pulumi up` fails with the port to
open, instead of the group failing to heal weeks later.

The command reads the node's own supervisor (on its node address, as its peers do), retrying for
a few polls since the supervisors learn that the group serves at their next poll; the judge reads
`deepseek_supervisor_head_healthy` and `deepseek_supervisor_peer_up{peer=...}`.
"""

from __future__ import annotations

import re
import shlex

from supervision.protocol import HEAD_HEALTHY, PEER_UP

from .common import CheckResult

CHECK = "group-view"


def group_view_command(metrics_url: str, wait_seconds: int) -> str:
    url = shlex.quote(metrics_url)
    blind = shlex.quote(f"^{HEAD_HEALTHY} 0|^{PEER_UP}.* 0$")
    return "\n".join(
        [
            f"i=0; while [ $i -lt {int(wait_seconds)} ]; do",
            f"  out=$( (curl -fsS --max-time 5 {url} || wget -qO- -T 5 {url}) 2>&1)",
            f'  if [ -n "$out" ] && ! printf "%s\\n" "$out" | grep -Eq {blind}; then break; fi',
            "  i=$((i + 1)); sleep 1",
            "done",
            'printf "%s\\n" "$out"',
        ]
    )


def judge_group_view(
    node: str, output: str, head: str, api_port: int, peers: dict[str, str], metrics_port: int
) -> CheckResult:
    """`peers`: name -> address of every other node of the group."""

    def result(ok: bool, seen: str) -> CheckResult:
        expected = "its supervisor to reach the head's API and every peer's supervisor"
        return CheckResult(node, CHECK, ok, expected, seen)

    healthy = re.search(rf"^{HEAD_HEALTHY} (\S+)$", output, re.M)
    if healthy is None:
        last = (output.strip().splitlines() or ["no answer"])[-1][:200]
        return result(False, f"no answer from its supervisor ({last}); is supervision.metricsPort open on the node?")
    up = dict(re.findall(rf'^{PEER_UP}{{peer="([^"]+)"}} (\S+)$', output, re.M))
    blind = []
    if healthy.group(1) != "1":
        blind.append(f"the head's API ({head} port {api_port}, serve.port)")
    blind += [
        f"{peer}'s supervisor ({address} port {metrics_port}, supervision.metricsPort)"
        for peer, address in sorted(peers.items())
        if up.get(peer) != "1"
    ]
    if blind:
        return result(False, f"it cannot reach {' nor '.join(blind)}; allow TCP to those ports between the nodes")
    return result(True, f"head and {len(peers)} peer(s) reached")
