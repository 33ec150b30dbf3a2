#!/usr/bin/env python3
"""Group supervisor: PID 1 of every vllm container, restarting the data-parallel group as a whole.

vllm forms a data-parallel group once; a member that dies, restarts or hangs leaves the others
unable to serve, and a member that comes back alone is refused. Docker's restart policy only
restarts one container. So every container's entrypoint is this program (uploaded into it at
creation; the container's command stays exactly the `vllm serve` argv, which it runs as a
child), and the supervisors of one group agree on a *generation* number:

- Each supervisor serves, on its node's address and `supervision.metricsPort`, `/state` (its
  generation, the reason for it, its phase) and `/metrics` (Prometheus text) without any key.
  Nodes only read each other's `/state` and the head's `/health` and `/metrics`: no Docker
  socket, no credentials, nothing a peer can command.
- A fault seen by any node (its vllm exited; its container restarted, which it knows from the
  state file left in the container; the head's `/health` failing for `unhealthySeconds` after
  the group served; the head's `process_start_time_seconds` changing; requests running on the
  head while `vllm:generation_tokens_total` stands still for `stallSeconds`, a hang that
  `/health` may not show; the group not serving within `startGraceSeconds`) makes it move to generation max+1. Every node that sees a newer
  generation than its own takes part: it stops its vllm (SIGTERM, then SIGKILL to the process
  group after `stopTimeoutSeconds`), waits until every peer has stopped its old process (or
  `barrierTimeoutSeconds` passed), backs off, and starts vllm again. The nodes that see the
  same fault pick the same number, so the group restarts once.
- Nothing is judged by health during a generation's start-up (the weight load) until the head
  first served or `startGraceSeconds` passed. Restarts back off (`backoffSeconds`, doubling up
  to `maxBackoffSeconds`); after `maxRestarts` restarts without the group serving in between,
  the supervisor gives up, leaves vllm stopped and says so in its log and metrics.

The decision logic is pure functions (`decide`, `stalled`, `begin_restart`, `barrier_open`);
`Supervisor` does the I/O. Why one file of this size: it is uploaded into every container as a
single file and run by the image's python3, so it can import nothing but the standard library,
and the repository's other modules import its constants (settings path, metric names) rather
than repeat them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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

# What the supervisor reads from the head's /metrics (vllm's own series).
START_TIME = "process_start_time_seconds"
REQUESTS_RUNNING = "vllm:num_requests_running"
GENERATION_TOKENS = "vllm:generation_tokens_total"


@dataclass(frozen=True)
class Settings:
    node: str
    bind: str
    port: int
    # name -> base URL of every other node's supervisor
    peers: dict[str, str]
    head_url: str
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

    @classmethod
    def from_json(cls, text: str) -> Settings:
        raw = json.loads(text)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Peer:
    gen: int
    reason: str
    phase: str


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
    # None: the peer's supervisor did not answer.
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


@dataclass(frozen=True)
class Restart:
    gen: int
    reason: str


def newest_peer(peers: dict[str, Peer | None]) -> tuple[str, Peer] | None:
    known = [(name, p) for name, p in peers.items() if p is not None]
    return max(known, key=lambda item: item[1].gen, default=None)


def sum_of(metrics: str, name: str) -> float | None:
    """A series' total over its labels (one per data-parallel engine) in Prometheus text."""
    values = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", metrics, re.M)
    return sum(float(v) for v in values) if values else None


def stalled(s: Settings, st: State, ob: Observation) -> tuple[State, str | None]:
    """Requests running but no token generated for stallSeconds: a hang /health does not show
    (real vllm can keep answering it while its ranks wait on each other forever)."""
    moved = st.tokens is None or ob.head_tokens != st.tokens
    if not ob.head_running or ob.head_tokens is None or moved or st.progress_at is None:
        return replace(st, tokens=ob.head_tokens, progress_at=ob.now), None
    if ob.now - st.progress_at < s.stall_seconds:
        return st, None
    waited = ob.now - st.progress_at
    return st, f"{ob.head_running:g} request(s) running but no token generated for {waited:.0f}s (stallSeconds)"


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
        known = st.head_start_time if st.head_start_time is not None else ob.head_start_time
        st = replace(st, served=True, phase="serving", unhealthy_since=None, consecutive=0, head_start_time=known)
        if known is not None and ob.head_start_time is not None and abs(ob.head_start_time - known) > 0.5:
            return st, Restart(following, "the head's vllm restarted (process_start_time_seconds changed)")
        st, stall = stalled(s, st, ob)
        return st, Restart(following, stall) if stall else None
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


def begin_restart(s: Settings, st: State, restart: Restart) -> State:
    """The state of a group restart: counted, and capped once it is one too many."""
    consecutive = st.consecutive + 1
    return replace(
        st,
        gen=restart.gen,
        reason=restart.reason,
        phase="capped" if consecutive > s.max_restarts else "stopping",
        served=False,
        unhealthy_since=None,
        head_start_time=None,
        tokens=None,
        progress_at=None,
        consecutive=consecutive,
        restarts=st.restarts + 1,
        capped=consecutive > s.max_restarts,
    )


def barrier_open(gen: int, peers: dict[str, Peer | None], waited: float, timeout: float) -> bool:
    """Start again once every peer has stopped its old vllm, or after the timeout (a peer that
    is down catches up when it comes back)."""
    stopped = all(p is not None and p.gen >= gen and p.phase != "stopping" for p in peers.values())
    return stopped or waited >= timeout


def on_start(st: State | None, peers: dict[str, Peer | None]) -> tuple[State, Restart | None]:
    """A fresh container joins its peers' generation; a restarted one (its state file survived
    in the container) restarts the group, unless a peer already did since."""
    newest = newest_peer(peers)
    if st is None:
        return State(gen=newest[1].gen if newest else 0), None
    if newest and newest[1].gen > st.gen:
        name, peer = newest
        return st, Restart(peer.gen, f"node {name} restarted the group: {peer.reason}")
    following = max(st.gen, newest[1].gen if newest else 0) + 1
    return st, Restart(following, "this container restarted (node reboot, or its supervisor died)")


def metrics_text(st: State, vllm_up: bool, head_healthy: bool) -> str:
    """Without labels: Prometheus adds the node's from its scrape target."""
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
            "1 once the head served in this generation; 0 during the weight load and a group restart.",
            int(st.served),
        ),
        (GENERATION, "gauge", "The group generation this node runs.", st.gen),
        (CONSECUTIVE_RESTARTS, "gauge", "Group restarts since the group last served.", st.consecutive),
    )
    lines = []
    for name, kind, help_, value in series:
        lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return "\n".join(lines) + "\n"


class Supervisor:
    def __init__(self, settings: Settings, argv: list[str]):
        self.s = settings
        self.argv = argv
        self.lock = threading.Lock()
        self.state = State()
        self.proc: subprocess.Popen | None = None
        self.exit_status: int | None = None
        self.head_healthy = False
        self.stopping = False

    # -- output
    def log(self, message: str) -> None:
        sys.stderr.write(f"supervisor[{self.s.node}]: {message}\n")
        sys.stderr.flush()

    def save(self) -> None:
        with open(self.s.state_file + ".tmp", "w") as f:
            json.dump(asdict(self.state), f)
        os.replace(self.s.state_file + ".tmp", self.s.state_file)

    def set_state(self, state: State) -> None:
        with self.lock:
            self.state = state
        self.save()

    def serve_http(self) -> None:
        sup = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with sup.lock:
                    st, up, healthy = sup.state, sup.vllm_up, sup.head_healthy
                if self.path == "/metrics":
                    body, kind = metrics_text(st, up, healthy), "text/plain; version=0.0.4"
                elif self.path == "/state":
                    body, kind = json.dumps({"gen": st.gen, "reason": st.reason, "phase": st.phase}), "application/json"
                else:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in self.s.bind else socket.AF_INET

        server = Server((self.s.bind, self.s.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()

    # -- the vllm child
    @property
    def vllm_up(self) -> bool:
        return self.proc is not None and self.exit_status is None

    def reap(self) -> None:
        """As PID 1, collect every exited process (vllm's orphans too), noting vllm's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.proc is not None and pid == self.proc.pid:
                self.exit_status = os.waitstatus_to_exitcode(status)

    def start_vllm(self) -> None:
        self.log(f"starting generation {self.state.gen}: {' '.join(self.argv)}")
        self.exit_status = None
        # Its own process group: stopping vllm also stops every worker it spawned.
        self.proc = subprocess.Popen(self.argv, start_new_session=True)
        self.set_state(replace(self.state, phase="starting", started_at=time.monotonic()))

    def stop_vllm(self) -> None:
        if not self.vllm_up:
            return
        for sig, wait in ((signal.SIGTERM, self.s.stop_timeout_seconds), (signal.SIGKILL, 30.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.reap()
                if self.exit_status is not None:
                    return
                time.sleep(0.1)
            if sig == signal.SIGTERM:
                self.log(f"vllm ignored SIGTERM for {wait:g}s; killing it")

    # -- observations
    def fetch(self, url: str, timeout: float = 2.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, ""
        except (OSError, ValueError):
            return 0, ""

    def peers(self) -> dict[str, Peer | None]:
        found = {}
        for name, url in self.s.peers.items():
            status, body = self.fetch(f"{url}/state", timeout=1.0)
            try:
                found[name] = Peer(**json.loads(body)) if status == 200 else None
            except (ValueError, TypeError):
                found[name] = None
        return found

    def observe(self) -> Observation:
        self.reap()
        healthy = self.fetch(f"{self.s.head_url}/health")[0] == 200
        # The head's /metrics needs no API key; read only while /health says it is up.
        metrics = self.fetch(f"{self.s.head_url}/metrics")[1] if healthy else ""
        with self.lock:
            self.head_healthy = healthy
        return Observation(
            time.monotonic(),
            self.exit_status,
            healthy,
            sum_of(metrics, START_TIME),
            sum_of(metrics, REQUESTS_RUNNING),
            sum_of(metrics, GENERATION_TOKENS),
            self.peers(),
        )

    # -- the loop
    def restart_group(self, restart: Restart) -> None:
        state = begin_restart(self.s, self.state, restart)
        self.log(f"group restart #{state.restarts} to generation {state.gen}: {state.reason}")
        self.set_state(state)
        self.stop_vllm()
        if state.capped:
            self.log(
                f"giving up: {self.s.max_restarts} group restarts in a row (maxRestarts) did not bring the group "
                "back; vllm stays stopped. Fix the cause (python -m ops.diagnose <stack>), then restart "
                "the group: pulumi up with supervision.groupEpoch raised by one"
            )
            return
        state = replace(state, phase="waiting")
        self.set_state(state)
        began = time.monotonic()
        while True:
            peers = self.peers()
            newest = newest_peer(peers)
            if newest and newest[1].gen > state.gen:
                # Another fault meanwhile: the same restart, under the newer number.
                state = replace(state, gen=newest[1].gen, reason=newest[1].reason)
                self.set_state(state)
            if barrier_open(state.gen, peers, time.monotonic() - began, self.s.barrier_timeout_seconds):
                break
            time.sleep(self.s.poll_seconds)
        delay = backoff(self.s, state.consecutive)
        self.log(
            f"restart {state.consecutive} in a row: starting vllm in {delay:g}s (max {self.s.max_restarts} in a row)"
        )
        time.sleep(delay)
        self.start_vllm()

    def run(self) -> None:
        self.serve_http()
        saved = None
        if os.path.exists(self.s.state_file):
            with open(self.s.state_file) as f:
                saved = State(**json.load(f))
        state, restart = on_start(saved, self.peers())
        self.state = state
        if restart is None:
            self.log(f"first start, generation {state.gen}, group epoch {self.s.group_epoch}")
            self.start_vllm()
        elif not state.capped:
            self.restart_group(restart)
        while not self.stopping:
            time.sleep(self.s.poll_seconds)
            state, restart = decide(self.s, self.state, self.observe())
            if state != self.state:
                self.set_state(state)
            if restart is not None:
                self.restart_group(restart)

    def shutdown(self, signum, frame) -> None:
        """docker stop: stop vllm the same way, then exit."""
        self.stopping = True
        self.log(f"signal {signum}: stopping vllm")
        self.stop_vllm()
        sys.exit(0)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: supervisor.py vllm serve ...", file=sys.stderr)
        return 2
    with open(SETTINGS_FILE) as f:
        supervisor = Supervisor(Settings.from_json(f.read()), argv)
    signal.signal(signal.SIGTERM, supervisor.shutdown)
    signal.signal(signal.SIGINT, supervisor.shutdown)
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
