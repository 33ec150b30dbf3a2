"""The group supervisors' protocol, as pure functions: what a node's observations mean, when a
restart starts, what a peer's answer is worth. `supervisor.py` does the I/O around it.

How a group restarts as a whole, and why, is in `supervisor.py`'s docstring. Standard library only:
both files are placed into every container (`core/supervision.py`), and the rest of the repository
imports the names here (settings path, metric names) rather than repeat them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

SETTINGS_FILE = "/opt/deepseek-r1-ascend/supervision.json"

# The series of this supervisor's /metrics. The alert rules, the dashboard and the diagnostics
# summary import these names (core/observability.py, core/dashboard.py, checks/diagnostics.py).
GROUP_RESTARTS = "deepseek_supervisor_group_restarts_total"
VLLM_UP = "deepseek_supervisor_vllm_up"
RESTART_CAPPED = "deepseek_supervisor_restart_capped"
HEAD_HEALTHY = "deepseek_supervisor_head_healthy"
GROUP_SERVED = "deepseek_supervisor_group_served"
GENERATION = "deepseek_supervisor_generation"
CONSECUTIVE_RESTARTS = "deepseek_supervisor_consecutive_restarts"
PEER_UP = "deepseek_supervisor_peer_up"
KV_TRANSFER_FAILURES = "deepseek_supervisor_kv_transfer_failures_total"

# What the supervisor reads from the head's /metrics (vllm's own series).
START_TIME = "process_start_time_seconds"
REQUESTS_RUNNING = "vllm:num_requests_running"
GENERATION_TOKENS = "vllm:generation_tokens_total"

PHASES = ("starting", "serving", "stopping", "waiting", "capped")
# Far more generations than any group restarts in its life; a larger number is not a peer's.
MAX_GENERATION = 2**31
# The API key vllm reads from its environment, which this process shares (never on an argv).
API_KEY_ENV = "VLLM_API_KEY"


@dataclass(frozen=True)
class Settings:
    node: str
    bind: str
    port: int
    # name -> base URL of every other node's supervisor
    peers: dict[str, str]
    # Where this node reaches the head's API: where vllm listens, as seen from this node.
    head_url: str
    # The group's fingerprint: peers of another group (an old container) are not peers.
    group: str
    served_model_name: str
    group_epoch: int
    start_grace_seconds: float
    unhealthy_seconds: float
    stall_seconds: float
    backoff_seconds: float
    max_backoff_seconds: float
    max_restarts: int
    stop_timeout_seconds: float
    barrier_timeout_seconds: float
    poll_seconds: float
    state_file: str
    # Give vllm what the image sets only in an interactive shell (its ~/.bashrc): Mooncake needs it.
    interactive_env: bool

    @classmethod
    def from_json(cls, text: str) -> Settings:
        raw = json.loads(text)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


# What vllm-ascend's Dockerfiles append to ~/.bashrc only, which `docker run ... vllm serve` never
# reads; without them Mooncake aborts ("corrupted size vs. prev_size", vllm-ascend #5609).
LIBRARY_DIR = "/usr/local/lib"
JEMALLOC = "/usr/lib/{machine}-linux-gnu/libjemalloc.so.2"


def interactive_env(environ: dict[str, str], machine: str) -> dict[str, str]:
    """The image's interactive-shell additions over `environ`: jemalloc preloaded, /usr/local/lib
    last on the library path (after the image's own, which `environ` holds)."""
    preload = [JEMALLOC.format(machine=machine), *filter(None, environ.get("LD_PRELOAD", "").split(":"))]
    libraries = [*filter(None, environ.get("LD_LIBRARY_PATH", "").split(":")), LIBRARY_DIR]
    return {"LD_PRELOAD": ":".join(preload), "LD_LIBRARY_PATH": ":".join(libraries)}


@dataclass(frozen=True)
class Peer:
    gen: int
    reason: str
    phase: str
    consecutive: int = 0


@dataclass(frozen=True)
class Observation:
    now: float
    # The local vllm's exit status once it has exited, else None.
    vllm_exit: int | None
    head_healthy: bool
    head_start_time: float | None
    # The head's requests running and generation tokens so far (None: not read).
    head_running: float | None
    head_tokens: float | None
    # None: the peer's supervisor did not answer, or answered as no peer of this group would.
    peers: dict[str, Peer | None]


@dataclass(frozen=True)
class State:
    gen: int = 0
    reason: str = "first start"
    phase: str = "starting"
    # When this generation's vllm started (monotonic seconds).
    started_at: float = 0.0
    served: bool = False
    unhealthy_since: float | None = None
    head_start_time: float | None = None
    # The head's generation token count, and when it last moved (or nothing was running).
    tokens: float | None = None
    progress_at: float | None = None
    # Group restarts since the group last served, and in total.
    consecutive: int = 0
    restarts: int = 0
    capped: bool = False


# What a restarted container needs to know; the rest is this run's bookkeeping, and writing it
# on every poll would put the disk in the serving path.
DURABLE = ("gen", "reason", "phase", "consecutive", "restarts", "capped")


def durable(st: State) -> dict:
    return {k: getattr(st, k) for k in DURABLE}


def load_state(text: str) -> State:
    """The saved state; ValueError when it is not one (empty after a power loss, corrupt)."""
    raw = json.loads(text)
    if not isinstance(raw, dict) or set(raw) != set(DURABLE):
        raise ValueError(f"expected the keys {', '.join(DURABLE)}")
    st = State(**raw)
    if not (_count(st.gen) and _count(st.consecutive) and _count(st.restarts)) or st.phase not in PHASES:
        raise ValueError("a field is out of range")
    if not isinstance(st.reason, str) or not isinstance(st.capped, bool):
        raise ValueError("a field has the wrong type")
    return st


@dataclass(frozen=True)
class Restart:
    gen: int
    reason: str
    # A suspected stall: restart only if a one-token request cannot finish either.
    confirm: bool = False


def _count(value) -> bool:
    return type(value) is int and 0 <= value < MAX_GENERATION


def parse_peer(body: str, group: str) -> Peer | None:
    """A peer's /state, or None when it is not one of this group's supervisors answering."""
    try:
        raw = json.loads(body)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("group") != group:
        return None
    gen, reason, phase, consecutive = (raw.get(k) for k in ("gen", "reason", "phase", "consecutive"))
    if not (_count(gen) and _count(consecutive)) or phase not in PHASES or not isinstance(reason, str):
        return None
    return Peer(gen, reason[:200], phase, consecutive)


def newest_peer(peers: dict[str, Peer | None]) -> tuple[str, Peer] | None:
    known = [(name, p) for name, p in peers.items() if p is not None]
    return max(known, key=lambda item: item[1].gen, default=None)


def sum_of(metrics: str, name: str) -> float | None:
    """A series' total over its labels (one per data-parallel engine) in Prometheus text."""
    values = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", metrics, re.M)
    try:
        return sum(float(v) for v in values) if values else None
    except ValueError:
        return None


def stalled(s: Settings, st: State, ob: Observation) -> tuple[State, str | None]:
    """Requests running but no token generated for stallSeconds: a hang /health does not show
    (real vllm keeps answering it while its ranks wait on each other forever)."""
    moved = st.tokens is None or ob.head_tokens != st.tokens
    if not ob.head_running or ob.head_tokens is None or moved or st.progress_at is None:
        return replace(st, tokens=ob.head_tokens, progress_at=ob.now), None
    if ob.now - st.progress_at < s.stall_seconds:
        return st, None
    waited = ob.now - st.progress_at
    return st, f"{ob.head_running:g} request(s) running but no token generated for {waited:.0f}s (stallSeconds)"


def in_group(st: State, peers: dict[str, Peer | None]) -> bool:
    """Every peer answers at this node's generation: a healthy head then serves with this node."""
    return all(p is not None and p.gen == st.gen and p.phase in ("starting", "serving") for p in peers.values())


def decide(s: Settings, st: State, ob: Observation) -> tuple[State, Restart | None]:
    """What one poll's observations mean: the updated bookkeeping, and a group restart or None."""
    if st.capped:
        return st, None
    newest = newest_peer(ob.peers)
    if newest and newest[1].gen > st.gen:
        name, peer = newest
        return st, Restart(peer.gen, f"node {name} restarted the group: {peer.reason}")
    following = max(st.gen, newest[1].gen if newest else 0) + 1
    if ob.vllm_exit is not None:
        return st, Restart(following, f"vllm exited with status {ob.vllm_exit}")
    if ob.head_healthy:
        st = replace(st, unhealthy_since=None)
        if not in_group(st, ob.peers):
            # A head that answers without this node's generation (a peer unreachable, or still
            # starting another one) proves nothing about this node: judge nothing, reset nothing.
            return replace(st, tokens=None, progress_at=None), None
        known = st.head_start_time if st.head_start_time is not None else ob.head_start_time
        st = replace(st, served=True, phase="serving", consecutive=0, head_start_time=known)
        if known is not None and ob.head_start_time is not None and abs(ob.head_start_time - known) > 0.5:
            return st, Restart(following, "the head's vllm restarted (process_start_time_seconds changed)")
        st, stall = stalled(s, st, ob)
        return st, Restart(following, stall, confirm=True) if stall else None
    # Progress is only judged across healthy polls of the head.
    st = replace(st, tokens=None, progress_at=None)
    if not st.served:
        # The weight load: nothing to judge until the group served once or the grace is over.
        if ob.now - st.started_at < s.start_grace_seconds:
            return st, None
        return st, Restart(following, f"the group did not serve within startGraceSeconds ({s.start_grace_seconds:g}s)")
    since = st.unhealthy_since if st.unhealthy_since is not None else ob.now
    st = replace(st, unhealthy_since=since)
    if ob.now - since >= s.unhealthy_seconds:
        return st, Restart(following, f"the head's /health failed for {ob.now - since:.0f}s")
    return st, None


def backoff(s: Settings, consecutive: int) -> float:
    return min(s.backoff_seconds * 2 ** max(consecutive - 1, 0), s.max_backoff_seconds)


def begin_restart(s: Settings, st: State, restart: Restart, peers: dict[str, Peer | None]) -> State:
    """The state of a group restart: counted, and capped once it is one too many. The count
    follows the highest among the peers, so every node backs off alike and caps together."""
    peer_counts = [p.consecutive for p in peers.values() if p is not None and p.gen == restart.gen]
    consecutive = max([st.consecutive + 1, *peer_counts])
    return replace(
        st,
        gen=restart.gen,
        reason=restart.reason,
        phase="stopping",
        served=False,
        unhealthy_since=None,
        head_start_time=None,
        tokens=None,
        progress_at=None,
        consecutive=consecutive,
        restarts=st.restarts + 1,
        capped=consecutive > s.max_restarts,
    )


def barrier(gen: int, peers: dict[str, Peer | None], waited: float, timeout: float) -> tuple[bool, list[str]]:
    """Whether to start generation `gen` now, and the peers it is (or was) waiting for.

    Every peer must answer, be of this generation or later, and have stopped its old vllm. A peer
    that does not answer, or that gave up, is waited for without a timeout: a group cannot form
    without it. One that answers but is slow to stop is waited for `timeout` at most.
    """
    absent = sorted(n for n, p in peers.items() if p is None or p.phase == "capped")
    behind = sorted(n for n, p in peers.items() if p is not None and (p.gen < gen or p.phase == "stopping"))
    if absent:
        return False, absent
    return (not behind or waited >= timeout), behind


def on_start(st: State | None, peers: dict[str, Peer | None], lost: str | None = None) -> tuple[State, Restart | None]:
    """A fresh container joins its peers' generation; a restarted one (its state survived in the
    container, or is `lost`: unreadable) restarts the group, unless a peer already did since."""
    newest = newest_peer(peers)
    if st is None and lost is None:
        return State(gen=newest[1].gen if newest else 0), None
    # What was lost is at most the generation the peers still run.
    st = st or State(gen=newest[1].gen if newest else 0)
    if newest and newest[1].gen > st.gen:
        name, peer = newest
        return st, Restart(peer.gen, f"node {name} restarted the group: {peer.reason}")
    following = max(st.gen, newest[1].gen if newest else 0) + 1
    why = f"its state file is unreadable: {lost}" if lost else "node reboot, or its supervisor died"
    return st, Restart(following, f"this container restarted ({why})")


# How much of one line of vllm's log is judged: vllm-ascend's messages start near the beginning of
# their line, and a line without end (binary output, a progress bar) must not grow memory.
LOG_LINE_HEAD = 4096


def kv_transfer_failed(line: bytes) -> bool:
    """Whether a line of vllm's log reports a KV transfer that failed, each failure once.

    vllm-ascend v0.18.0 does not fail the request: the decoder logs the failure and decodes on KV
    that never arrived. Its connector (kv_p2p/mooncake_connector.py) logs `Mooncake transfer
    failed for request <id>` (the layerwise one `... for send requests`, or `... to create link`),
    then raises `Mooncake transfer failed, ret: <n>`, which its caller logs again with the
    traceback as `Failed to transfer KV cache for request <id>: <error>`. So the raised text is
    an echo of a failure already counted, and the caller's line counts only for other errors (a
    failed handshake), which lose the KV the same way.
    """
    if b"Mooncake transfer failed" in line:
        return b"Mooncake transfer failed, ret:" not in line
    return b"Failed to transfer KV cache for request" in line


def scan_log(head: bytes, chunk: bytes) -> tuple[bytes, int]:
    """The failures in the lines that `chunk` ends, given the head of the line it continues;
    returns the head of the line it leaves unfinished (at most LOG_LINE_HEAD bytes)."""
    *ended, rest = chunk.split(b"\n")
    found = 0
    for part in ended:
        found += kv_transfer_failed(head + part[: LOG_LINE_HEAD - len(head)])
        head = b""
    return head + rest[: LOG_LINE_HEAD - len(head)], found


def state_body(s: Settings, st: State) -> str:
    return json.dumps(
        {"group": s.group, "gen": st.gen, "reason": st.reason, "phase": st.phase, "consecutive": st.consecutive}
    )


def metrics_text(
    st: State, vllm_up: bool, head_healthy: bool, peers_up: dict[str, bool] | None = None, kv_failures: int = 0
) -> str:
    """Without labels of their own (Prometheus adds the node's from its scrape target), but the
    peer a reachability series is about."""
    series = (
        (GROUP_RESTARTS, "counter", "Group restarts this node took part in.", st.restarts),
        (VLLM_UP, "gauge", "1 while this node's vllm process runs.", int(vllm_up)),
        (
            RESTART_CAPPED,
            "gauge",
            "1 once maxRestarts restarts in a row failed and the supervisor gave up.",
            int(st.capped),
        ),
        (HEAD_HEALTHY, "gauge", "This node's last view of the head's /health.", int(head_healthy)),
        (
            GROUP_SERVED,
            "gauge",
            "1 once the head served with this node in this generation; 0 during the weight load and a restart.",
            int(st.served),
        ),
        (GENERATION, "gauge", "The group generation this node runs.", st.gen),
        (CONSECUTIVE_RESTARTS, "gauge", "Group restarts since the group last served.", st.consecutive),
        (
            KV_TRANSFER_FAILURES,
            "counter",
            "KV transfers that failed on this node, from vllm's log; each one is a wrong answer in v0.18.0.",
            kv_failures,
        ),
    )
    lines = []
    for name, kind, help_, value in series:
        lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value}"]
    if peers_up:
        lines += [
            f"# HELP {PEER_UP} 1 while the peer's supervisor answers as one of this group.",
            f"# TYPE {PEER_UP} gauge",
        ]
        lines += [f'{PEER_UP}{{peer="{name}"}} {int(up)}' for name, up in sorted(peers_up.items())]
    return "\n".join(lines) + "\n"
