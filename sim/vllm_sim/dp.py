"""Data-parallel handshake between the head and headless nodes: the protocol and the head's side
(`DPHead`); the headless side is `headless.run_headless`.

Protocol: line-delimited JSON over TCP on (data-parallel-address,
data-parallel-rpc-port).

  joiner -> head   {"type": "hello", "dp_size", "start_rank", "local", "tp",
                    "model", "served_model_name", ...shared settings}
  head -> joiner   {"type": "welcome", "ranks": [first, last]}
                   or {"type": "reject", "error": "..."} (then closes)
  both directions  {"type": "heartbeat"} every HEARTBEAT_INTERVAL seconds
  head -> joiners  {"type": "ready", "dp_size": N} once all ranks are covered

A connection that drops, or is silent for HEARTBEAT_TIMEOUT seconds, loses its
ranks for good: the head's /health turns 503 and stays so (vllm does not
recover a lost DP rank); a headless node that loses its head exits non-zero.

Real vllm has also been seen to fail other ways; VLLM_SIM_MODE (a comma list)
picks them per run:
  head-exits-on-lost-rank   the head exits 1 when it loses a rank (its engine
                            core dies and takes the API server with it)
  headless-waits-for-head   a headless node whose head is gone waits forever
In every mode SIGUSR1 makes a rank hang: the process stays, heartbeats and
HTTP answers stop, and SIGTERM is ignored (only SIGKILL ends it).
"""

import json
import os
import signal
import socket
import threading
import time

from vllm_sim.log import Fatal, error, log

HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TIMEOUT = 5.0

# Settings every DP rank must agree on (hello key -> flag shown in errors).
SHARED_SETTINGS = {
    "tp": "--tensor-parallel-size",
    "model": "model",
    "quantization": "--quantization",
    "enable_expert_parallel": "--enable-expert-parallel",
    "max_model_len": "--max-model-len",
}


MODES = ("head-exits-on-lost-rank", "headless-waits-for-head")
HUNG = threading.Event()


def run_modes() -> set[str]:
    modes = {m.strip() for m in os.environ.get("VLLM_SIM_MODE", "").split(",") if m.strip()}
    unknown = sorted(modes - set(MODES))
    if unknown:
        raise Fatal(f"unknown VLLM_SIM_MODE {', '.join(unknown)}; known: {', '.join(MODES)}")
    return modes


def install_hang_trigger() -> None:
    """SIGUSR1 hangs this rank, as a stuck collective or a wedged driver call would."""

    def hang(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        HUNG.set()
        log("hanging (SIGUSR1): heartbeats and HTTP answers stop; only SIGKILL ends this process")

    signal.signal(signal.SIGUSR1, hang)


def stall_if_hung() -> None:
    if HUNG.is_set():
        threading.Event().wait()


def hello_from_args(args) -> dict:
    return {
        "type": "hello",
        "dp_size": args.data_parallel_size,
        "start_rank": args.data_parallel_start_rank,
        "local": args.data_parallel_size_local,
        "tp": args.tensor_parallel_size,
        "model": args.model,
        "served_model_name": args.served_model_name or [args.model],
        "quantization": args.quantization,
        "enable_expert_parallel": bool(args.enable_expert_parallel),
        "max_model_len": args.max_model_len,
    }


def rank_str(first: int, count: int) -> str:
    last = first + count - 1
    return str(first) if count == 1 else f"{first}-{last}"


def send(sock: socket.socket, lock: threading.Lock, obj: dict) -> None:
    data = (json.dumps(obj) + "\n").encode()
    with lock:
        sock.sendall(data)


class LineReader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def read(self):
        """Next JSON object, or None on EOF. Raises socket.timeout/OSError."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > 1 << 20:
                raise OSError("line too long")
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line.decode())


class DPHead:
    """The head's view of the cluster: which ranks are covered and alive."""

    def __init__(self, args, listen_host: str):
        self.args = args
        self.dp_size = args.data_parallel_size
        self.local_hello = hello_from_args(args)
        self.listen_host = listen_host
        self.port = args.data_parallel_rpc_port
        self.lock = threading.Lock()
        first = args.data_parallel_start_rank
        # rank -> owner description
        self.owners = {r: "head" for r in range(first, first + args.data_parallel_size_local)}
        self.lost = []  # descriptions of lost rank ranges
        self.all_joined = threading.Event()
        self.conns = []  # (sock, send_lock)
        self.stopping = False
        self.server_sock = None
        self.exit_on_lost_rank = "head-exits-on-lost-rank" in run_modes()
        install_hang_trigger()
        if len(self.owners) == self.dp_size:
            self.all_joined.set()

    # -- status
    @property
    def healthy(self) -> bool:
        return self.all_joined.is_set() and not self.lost

    def start(self) -> None:
        if self.all_joined.is_set():
            return  # single node: nobody needs to join
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.listen_host, self.port))
        except OSError as e:
            s.close()
            raise Fatal(
                f"cannot listen for data-parallel peers on {self.listen_host}:{self.port}: {e.strerror or e}"
            ) from e
        s.listen(64)
        self.server_sock = s
        log(
            f"data-parallel head: local ranks "
            f"{rank_str(self.args.data_parallel_start_rank, self.args.data_parallel_size_local)} "
            f"of {self.dp_size}; waiting for the other ranks on {self.listen_host}:{self.port}"
        )
        threading.Thread(target=self._accept_loop, name="dp-accept", daemon=True).start()

    def stop(self) -> None:
        self.stopping = True
        if self.server_sock is not None:
            try:
                self.server_sock.close()
            except OSError:
                pass
        for sock, _ in list(self.conns):
            try:
                sock.close()
            except OSError:
                pass

    def _accept_loop(self) -> None:
        while not self.stopping:
            try:
                sock, addr = self.server_sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(sock, addr[0]), name="dp-peer", daemon=True).start()

    def _check_hello(self, hello: dict):
        """Return (first, count) or raise ValueError with the reason."""
        if hello.get("type") != "hello":
            raise ValueError("expected a hello message")
        try:
            size = int(hello["dp_size"])
            first = int(hello["start_rank"])
            count = int(hello["local"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("malformed hello (dp_size/start_rank/local)") from None
        if size != self.dp_size:
            raise ValueError(f"data-parallel-size mismatch: joiner has {size}, head has {self.dp_size}")
        for key, flag in SHARED_SETTINGS.items():
            mine, theirs = self.local_hello.get(key), hello.get(key)
            if mine != theirs:
                raise ValueError(f"{flag} mismatch: joiner has {theirs!r}, head has {mine!r}")
        if count < 1 or first < 0 or first + count > self.dp_size:
            raise ValueError(f"ranks {rank_str(first, max(count, 1))} outside 0-{self.dp_size - 1}")
        with self.lock:
            if self.lost:
                raise ValueError(
                    "the cluster already lost data-parallel rank(s) "
                    f"{', '.join(self.lost)}; restart the head (vllm cannot re-add a DP rank)"
                )
            taken = sorted(r for r in range(first, first + count) if r in self.owners)
            if taken:
                owners = sorted({self.owners[r] for r in taken})
                raise ValueError(
                    f"ranks {rank_str(first, count)} overlap already joined rank(s) "
                    f"{', '.join(map(str, taken))} (owned by {', '.join(owners)}); "
                    "check --data-parallel-start-rank"
                )
        return first, count

    def _handle(self, sock: socket.socket, peer: str) -> None:  # noqa: C901 (one branch per handshake message)
        send_lock = threading.Lock()
        reader = LineReader(sock)
        sock.settimeout(HEARTBEAT_TIMEOUT)
        joined = None
        try:
            try:
                hello = reader.read()
            except (OSError, ValueError):
                hello = None
            if hello is None:
                sock.close()
                return
            try:
                first, count = self._check_hello(hello)
            except ValueError as e:
                error(f"rejected data-parallel peer {peer}: {e}")
                try:
                    send(sock, send_lock, {"type": "reject", "error": str(e)})
                except OSError:
                    pass
                sock.close()
                return
            desc = f"{peer}"
            with self.lock:
                # re-check under the lock against a concurrent joiner
                if any(r in self.owners for r in range(first, first + count)):
                    msg = f"ranks {rank_str(first, count)} overlap already joined ranks"
                    error(f"rejected data-parallel peer {peer}: {msg}")
                    send(sock, send_lock, {"type": "reject", "error": msg})
                    sock.close()
                    return
                for r in range(first, first + count):
                    self.owners[r] = desc
                joined = (first, count)
                self.conns.append((sock, send_lock))
                complete = len(self.owners) == self.dp_size
            send(sock, send_lock, {"type": "welcome", "ranks": [first, first + count - 1]})
            log(f"rank {rank_str(first, count)} joined from {peer}")
            threading.Thread(target=self._heartbeat_loop, args=(sock, send_lock), daemon=True).start()
            if complete:
                self.all_joined.set()
                log(f"data-parallel ranks 0-{self.dp_size - 1} all present")
                self.broadcast({"type": "ready", "dp_size": self.dp_size})
            # keep reading heartbeats until the peer goes away
            while not self.stopping:
                msg = reader.read()
                if msg is None:
                    raise OSError("connection closed")
        except (OSError, ValueError) as e:
            if self.stopping or joined is None:
                return
            first, count = joined
            reason = "heartbeat timeout" if isinstance(e, socket.timeout) else str(e)
            with self.lock:
                self.lost.append(rank_str(first, count))
                self.conns = [c for c in self.conns if c[0] is not sock]
            stall_if_hung()
            if self.exit_on_lost_rank:
                error(
                    f"data-parallel rank {rank_str(first, count)} from {peer} lost ({reason}); engine core died, exiting"
                )
                os._exit(1)
            error(
                f"data-parallel rank {rank_str(first, count)} from {peer} lost ({reason}); "
                "engine unhealthy, /health now returns 503"
            )
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _heartbeat_loop(self, sock, send_lock) -> None:
        while not self.stopping:
            time.sleep(HEARTBEAT_INTERVAL)
            stall_if_hung()
            try:
                send(sock, send_lock, {"type": "heartbeat"})
            except OSError:
                return

    def broadcast(self, obj: dict) -> None:
        for sock, send_lock in list(self.conns):
            try:
                send(sock, send_lock, obj)
            except OSError:
                pass
