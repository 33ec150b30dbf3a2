"""Group supervisor: PID 1 of every vllm container, restarting the data-parallel group as a whole.

vllm forms a data-parallel group once; a member that dies, restarts or hangs leaves the others
unable to serve, and a member that comes back alone is refused. Docker's restart policy only
restarts one container. So every container's entrypoint is this program (uploaded into it at
creation; the container's command stays exactly the `vllm serve` argv, which it runs as a
child), and the supervisors of one group agree on a *generation* number:

- Each supervisor serves, on its node's address and `supervision.metricsPort`, `/state` (its
  group, generation, the reason for it, its phase) and `/metrics` (Prometheus text) without any
  key. Nodes only read each other's `/state` and the head's `/health` and `/metrics`. A peer's
  answer is validated and one from another group (another fingerprint: an old container during
  a rolling `pulumi up`) counts as no answer. A newer generation from a peer of this group is a
  restart request; a peer can ask for nothing else.
- A fault seen by any node (its vllm exited; its container restarted, which it knows from the
  state left in the container; the head's `/health` failing for `unhealthySeconds` after the
  group served; the head's `process_start_time_seconds` changing; requests running on the head
  while `vllm:generation_tokens_total` stands still for `stallSeconds` and a one-token request
  cannot finish either; the group not serving within `startGraceSeconds`) makes it move to
  generation max+1. Every node that sees a newer generation takes part: it stops its vllm's
  whole process group (SIGTERM, then SIGKILL after `stopTimeoutSeconds`, and it waits until no
  process of it is left: vllm's engine cores outlive their API server and keep the NPUs), waits
  until every peer answers and has stopped its old vllm, backs off, and starts vllm again. The
  nodes that see the same fault pick the same number, so the group restarts once.
- A peer that does not answer holds the restart at the barrier without counting anything: the
  group cannot form without it, and it heals by itself when the peer is back.
- Nothing is judged by health during a generation's start-up (the weight load) until the group
  first served or `startGraceSeconds` passed. The group counts as served only when the head is
  healthy and every peer answers at this node's generation. Restarts back off (`backoffSeconds`,
  doubling up to `maxBackoffSeconds`); after `maxRestarts` restarts without the group serving
  in between, the supervisor gives up, leaves vllm stopped and says so in its log and metrics.
- vllm's output passes through the supervisor unchanged to the container's stdout and stderr,
  and the supervisor counts the KV transfers it reports failed, which vllm-ascend v0.18.0 only
  logs. It reads until the pipes close, whatever arrives, so vllm never blocks on a full pipe.
- The supervisor never makes things worse than no supervisor: an error of its own (a full or
  read-only disk, an unreadable state file) is logged and outlived, never allowed to kill PID 1
  and with it a serving vllm.

The decisions are pure functions in `protocol.py` (`decide`, `stalled`, `begin_restart`,
`barrier`, `on_start`, `parse_peer`, `scan_log`); `Supervisor` here does the I/O: the vllm process
group and its output, the state file, HTTP. Both are placed into the container as the package
`supervision` beside a launcher (`core/supervision.py`) and run by the image's python3, so they
use nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .protocol import (
    API_KEY_ENV,
    GENERATION_TOKENS,
    REQUESTS_RUNNING,
    SETTINGS_FILE,
    START_TIME,
    Observation,
    Peer,
    Restart,
    Settings,
    State,
    backoff,
    barrier,
    begin_restart,
    decide,
    durable,
    interactive_env,
    kv_transfer_failed,
    load_state,
    metrics_text,
    newest_peer,
    on_start,
    parse_peer,
    scan_log,
    state_body,
    sum_of,
)

# A pipe's capacity: one read takes what vllm wrote meanwhile, and memory stays bounded.
RELAY_CHUNK = 65536


class Supervisor:
    def __init__(self, settings: Settings, argv: list[str]):
        self.s = settings
        self.argv = argv
        self.lock = threading.Lock()
        self.state = State()
        self.proc: subprocess.Popen | None = None
        self.exit_status: int | None = None
        self.head_healthy = False
        self.peers_up: dict[str, bool] = {}
        self.stopping = False
        self.saved: dict | None = None
        self.last_error: str | None = None
        self.kv_failures = 0
        self.relays: list[threading.Thread] = []

    # -- output
    def log(self, message: str) -> None:
        sys.stderr.write(f"supervisor[{self.s.node}]: {message}\n")
        sys.stderr.flush()

    def complain(self, what: str, error: BaseException) -> None:
        """Log an error of the supervisor's own once until it changes: it is outlived, never fatal."""
        text = f"{what}: {type(error).__name__}: {error}"
        if text != self.last_error:
            self.log(f"{text} (carrying on; vllm is not affected)")
        self.last_error = text

    def save(self) -> None:
        """Durably, and only when what a restarted container needs has changed."""
        record = durable(self.state)
        if record == self.saved:
            return
        directory = os.path.dirname(self.s.state_file) or "."
        tmp = self.s.state_file + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(record, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.s.state_file)
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            self.complain(f"cannot save {self.s.state_file}", e)
            return
        self.saved = record

    def set_state(self, state: State) -> None:
        with self.lock:
            self.state = state
        self.save()

    def load(self) -> tuple[State | None, str | None]:
        """The state a previous run of this container left, or why it is lost (unreadable). A
        marker beside it tells a restarted container from a fresh one even when the state is lost."""
        marker = self.s.state_file + ".started"
        restarted = os.path.exists(marker)
        try:
            with open(marker, "a"):
                pass
        except OSError as e:
            self.complain(f"cannot write {marker}", e)
        if not restarted:
            return None, None
        try:
            with open(self.s.state_file) as f:
                state = load_state(f.read())
        except (OSError, ValueError, TypeError) as e:
            return None, f"{type(e).__name__}: {e}"
        self.saved = durable(state)
        return state, None

    def serve_http(self) -> None:
        sup = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with sup.lock:
                    st, up, healthy, peers_up = sup.state, sup.vllm_up, sup.head_healthy, dict(sup.peers_up)
                    failures = sup.kv_failures
                if self.path == "/metrics":
                    body, kind = metrics_text(st, up, healthy, peers_up, failures), "text/plain; version=0.0.4"
                elif self.path == "/state":
                    body, kind = state_body(sup.s, st), "application/json"
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

    # -- the vllm child and everything it spawned
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

    def group_alive(self) -> bool:
        """Whether any process of vllm's process group is left (its engine cores and workers
        keep running, and keep the NPUs, after the API server process is gone)."""
        if self.proc is None:
            return False
        self.reap()
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop_vllm(self) -> bool:
        """Stop every process of vllm's group, its leader gone or not; False if some survive."""
        if not self.group_alive():
            return True
        for sig, wait in ((signal.SIGTERM, self.s.stop_timeout_seconds), (signal.SIGKILL, 30.0)):
            self.signal_group(sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.group_alive():
                    return True
                time.sleep(0.1)
            if sig == signal.SIGTERM:
                self.log(f"vllm ignored SIGTERM for {wait:g}s; killing it")
        self.log(
            f"processes of vllm's group {self.proc.pid} survive SIGKILL (stuck in the kernel?); "
            "no new generation starts while they hold the NPUs"
        )
        return False

    def start_vllm(self) -> None:
        self.log(f"starting generation {self.state.gen}: {' '.join(self.argv)}")
        self.exit_status = None
        try:
            # Its own process group: stopping vllm also stops every worker it spawned. Its
            # output comes through pipes (unbuffered), which its workers inherit too.
            env = {**os.environ, **(interactive_env(os.environ, platform.machine()) if self.s.interactive_env else {})}
            self.proc = subprocess.Popen(
                self.argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env
            )
        except OSError as e:
            self.complain("cannot start vllm", e)
            # Seen as an exit by the next poll: a counted restart, with its back-off.
            self.exit_status = 127
        else:
            self.relays = [
                threading.Thread(target=self.relay, args=a, daemon=True)
                for a in ((self.proc.stdout, 1), (self.proc.stderr, 2))
            ]
            for thread in self.relays:
                thread.start()
        self.set_state(replace(self.state, phase="starting", started_at=time.monotonic()))

    def relay(self, pipe, fd: int) -> None:
        """Copy one of vllm's pipes to this process's `fd` as it comes, counting failed KV
        transfers line by line, until every process holding the pipe is gone."""
        head = b""
        with pipe:
            for chunk in iter(lambda: pipe.read(RELAY_CHUNK), b""):
                head, found = scan_log(head, chunk)
                with self.lock:
                    self.kv_failures += found
                try:
                    while chunk:
                        chunk = chunk[os.write(fd, chunk) :]
                except OSError:
                    # The container's output is gone (nothing to log to either): drop this chunk
                    # but keep reading, or vllm would block writing its next line.
                    pass
        with self.lock:
            self.kv_failures += kv_transfer_failed(head)

    # -- observations
    def fetch(self, url: str, timeout: float = 2.0, body: bytes | None = None) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        key = os.environ.get(API_KEY_ENV)
        if body is not None and key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            request = urllib.request.Request(url, data=body, headers=headers)
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, ""
        except (OSError, ValueError):
            return 0, ""

    def peers(self) -> dict[str, Peer | None]:
        found = {}
        for name, url in self.s.peers.items():
            status, body = self.fetch(f"{url}/state", timeout=1.0)
            found[name] = parse_peer(body, self.s.group) if status == 200 else None
        with self.lock:
            self.peers_up = {name: peer is not None for name, peer in found.items()}
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

    def completes_one_token(self) -> bool:
        """A hung engine cannot finish even one token; an idle one whose gauges went stale after
        aborted requests can (and the request refreshes them)."""
        request = {"model": self.s.served_model_name, "prompt": "ping", "max_tokens": 1}
        timeout = min(max(self.s.stall_seconds, 5.0), 60.0)
        return self.fetch(f"{self.s.head_url}/v1/completions", timeout, json.dumps(request).encode())[0] == 200

    # -- the loop
    def restart_group(self, restart: Restart) -> None:
        state = begin_restart(self.s, self.state, restart, self.peers())
        self.log(f"group restart #{state.restarts} to generation {state.gen}: {state.reason}")
        self.set_state(state)
        while not self.stop_vllm():
            time.sleep(self.s.poll_seconds)
        if state.capped:
            self.set_state(replace(state, phase="capped"))
            self.log(
                f"giving up: {self.s.max_restarts} group restarts in a row (maxRestarts) did not bring the group "
                "back; vllm stays stopped. Fix the cause (python -m ops.diagnose <stack>), then restart "
                "the group: pulumi up with supervision.groupEpoch raised by one"
            )
            return
        state = replace(state, phase="waiting")
        self.set_state(state)
        began, reported = time.monotonic(), None
        while True:
            peers = self.peers()
            newest = newest_peer(peers)
            if newest and newest[1].gen > state.gen:
                # Another fault meanwhile: the same restart, under the newer number.
                state = replace(state, gen=newest[1].gen, reason=newest[1].reason)
                self.set_state(state)
            ready, waiting_for = barrier(state.gen, peers, time.monotonic() - began, self.s.barrier_timeout_seconds)
            if ready:
                if waiting_for:
                    self.log(
                        f"barrier timed out ({self.s.barrier_timeout_seconds:g}s) waiting for {', '.join(waiting_for)}"
                    )
                break
            if waiting_for != reported and any(peers.get(n) is None or peers[n].phase == "capped" for n in waiting_for):
                self.log(f"waiting for {', '.join(waiting_for)} to answer as this group (not counted as a restart)")
                reported = waiting_for
            time.sleep(self.s.poll_seconds)
        delay = backoff(self.s, state.consecutive)
        self.log(
            f"restart {state.consecutive} in a row: starting vllm in {delay:g}s (max {self.s.max_restarts} in a row)"
        )
        time.sleep(delay)
        self.start_vllm()

    def poll(self) -> None:
        state, restart = decide(self.s, self.state, self.observe())
        if restart is not None and restart.confirm:
            if self.completes_one_token():
                self.log(f"not restarting: {restart.reason}, yet a one-token request completes (stale gauges)")
                state, restart = replace(state, tokens=None, progress_at=None), None
        if state != self.state:
            self.set_state(state)
        if restart is not None:
            self.restart_group(restart)

    def run(self) -> None:
        saved, lost = self.load()
        if saved is not None:
            self.state = saved
        # Serve the saved state from the first answer on, never a default a peer could adopt.
        self.serve_http()
        state, restart = on_start(saved, self.peers(), lost)
        self.state = state
        if restart is None:
            self.log(f"first start, generation {state.gen}, group epoch {self.s.group_epoch}")
            self.start_vllm()
        elif not state.capped:
            self.restart_group(restart)
        while not self.stopping:
            time.sleep(self.s.poll_seconds)
            try:
                self.poll()
            except Exception as e:  # PID 1 must outlive its own bugs: dying would kill a serving vllm
                self.complain("supervisor error", e)

    def shutdown(self, signum, frame) -> None:
        """docker stop: stop vllm the same way, then exit."""
        self.stopping = True
        self.log(f"signal {signum}: stopping vllm")
        self.stop_vllm()
        # vllm's last words (its shutdown log) may still be in the pipes.
        for thread in self.relays:
            thread.join(timeout=2.0)
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
