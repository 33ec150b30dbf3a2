"""A group's membership of the router: joining once it serves, and leaving drained.

`join-router` runs when a group's containers were created: when another group serves already (a
rollout), the group joins the router only once it serves itself, so the next group's replacement
waits for it; when none serves (a first deployment), it returns at once and the router admits the
group when it turns healthy, so every group loads its weights at the same time.

`drain-from-router` runs before a group's containers stop: the router stops sending it requests,
and the step waits until the group's running and waiting requests reach zero, or the timeout.
Both run on the router's node, which reaches the router and every group's head.
"""

from __future__ import annotations

import re
import shlex

from .servicechecks import API_FUNCTION

JOIN = "join-router"
DRAIN = "drain-from-router"
_JOINED = re.compile(r"^joined after (\d+)s$", re.MULTILINE)
_ADMITTED = "admitted when ready"
_NOT_READY = re.compile(r"^not serving after (\d+)s$", re.MULTILINE)
_DRAINED = re.compile(r"^drained after (\d+)s, (\d+) requests left$", re.MULTILINE)


def join_command(router: str, worker: str, served_name: str, timeout_s: int, interval_s: int) -> str:
    r, w = shlex.quote(router), shlex.quote(worker)
    listed = shlex.quote(f'"id": *"{re.escape(served_name)}"')
    add = f"curl -s --max-time {int(timeout_s)} -X POST {shlex.quote(f'{router}/add_worker?url={worker}')}"
    return "\n".join(
        [
            API_FUNCTION,
            # The groups the router lists besides this one, and which of them serve now.
            f"others=$(curl -s --max-time 10 {r}/workers | grep -o 'http://[^\"]*' | grep -vxF {w} | sort -u)",
            'serving=""',
            'for url in $others; do curl -sf --max-time 5 -o /dev/null "$url/health" && serving="$serving $url"; done',
            'if [ -z "$serving" ]; then',
            # Nobody to keep serving: the router takes the group in once it is healthy.
            # Its own session, without the step's input and output: it outlives the SSH session.
            f"  setsid nohup {add} </dev/null >/dev/null 2>&1 &",
            f"  echo {shlex.quote(_ADMITTED)}",
            "  exit 0",
            "fi",
            "start=$(date +%s)",
            f"until curl -sf --max-time 10 -o /dev/null {w}/health && api -fsS --max-time 10 {w}/v1/models | grep -q {listed}; do",
            "  waited=$(( $(date +%s) - start ))",
            f'  if [ $waited -ge {int(timeout_s)} ]; then echo "not serving after ${{waited}}s"; exit 0; fi',
            f"  sleep {int(interval_s)}",
            "done",
            f"{add} >/dev/null",
            'echo "joined after $(( $(date +%s) - start ))s"',
        ]
    )


def judge_join(group: str, output: str, worker: str, timeout_s: int) -> dict:
    """The report, or ValueError with the message the user sees."""
    if _ADMITTED in output:
        return {"joined": "when ready"}
    joined = _JOINED.search(output)
    if joined:
        return {"joined": f"after {joined.group(1)}s"}
    if _NOT_READY.search(output):
        raise ValueError(
            f"group {group}: expected its head {worker} to serve within {timeout_s}s before it rejoins the router, "
            "saw it not serving; the other groups keep serving. Look at its containers (python -m ops.diagnose)"
        )
    raise ValueError(f"group {group}: joining the router printed {' '.join(output.split())[:200]!r}")


def drain_command(router: str, worker: str, timeout_s: int) -> str:
    w = shlex.quote(worker)
    # One series per data-parallel engine: a group's requests are their sum.
    count = (
        f"curl -s --max-time 5 {w}/metrics | awk "
        "'/^vllm:num_requests_(running|waiting)[{ ]/ {s += $NF} END {printf \"%d\", s}'"
    )
    return "\n".join(
        [
            f"curl -s --max-time 10 -X POST {shlex.quote(f'{router}/remove_worker?url={worker}')} >/dev/null || true",
            "start=$(date +%s)",
            "while :; do",
            f"  left=$({count})",
            "  waited=$(( $(date +%s) - start ))",
            f'  if [ "${{left:-0}}" -eq 0 ] || [ $waited -ge {int(timeout_s)} ]; then break; fi',
            "  sleep 1",
            "done",
            'echo "drained after ${waited}s, ${left:-0} requests left"',
        ]
    )


def judge_drain(group: str, output: str) -> dict:
    """Never a failure: a group is stopped after the drain timeout even with requests left."""
    drained = _DRAINED.search(output)
    if not drained:
        return {"drained": f"unknown ({' '.join(output.split())[:100]})"}
    seconds, left = drained.groups()
    return {"drained": f"after {seconds}s", "requestsLeft": int(left)}
