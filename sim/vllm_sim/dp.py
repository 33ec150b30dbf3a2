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
  head -> joiners  {"type": "step", "n": N}: the collective of engine step N (`steps`)
  joiner -> head   {"type": "step_done", "n": N}: this rank took part in it
  head -> joiners  {"type": "idle"}: no more steps until new work (the end of a wave)

A connection that drops loses its ranks for good: the head's /health turns 503 and stays so
(vllm does not recover a lost DP rank); a headless node that loses its head exits non-zero.
A connection that stays open but goes silent (a hung rank) is noticed by nobody, as in real
vllm (no heartbeat between DP ranks; /health stays 200, vllm #39863): only a collective that
times out (HCCL_EXEC_TIMEOUT, see `steps`) ends it. VLLM_SIM_MODE picks other behaviours
(`faults`), heartbeat-timeout among them: a peer silent for HEARTBEAT_TIMEOUT seconds is lost.
"""

import json
import socket
import threading
import time

from vllm_sim import engine_core
from vllm_sim.faults import install_triggers, run_modes, stall_if_hung
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


class PeerConn:
    """A joined headless node: its connection, its ranks, the last engine step it finished."""

    def __init__(self, sock: socket.socket, address: str, first: int, count: int):
        self.sock, self.address = sock, address
        self.send_lock = threading.Lock()
        self.ranks = rank_str(first, count)
        self.acked = 0
        self.alive = True

    def send(self, obj: dict) -> None:
        try:
            send(self.sock, self.send_lock, obj)
        except OSError:
            pass


class DPHead:
    """The head's view of the cluster: which ranks are covered and alive."""

    def __init__(self, args, listen_host: str):
        self.args = args
        self.dp_size = args.data_parallel_size
        self.first_rank = args.data_parallel_start_rank
        self.local_hello = hello_from_args(args)
        self.listen_host = listen_host
        self.port = args.data_parallel_rpc_port
        self.lock = threading.Lock()
        first = args.data_parallel_start_rank
        # rank -> owner description
        self.owners = {r: "head" for r in range(first, first + args.data_parallel_size_local)}
        self.lost = []  # descriptions of lost rank ranges
        self.all_joined = threading.Event()
        self.peers: list[PeerConn] = []  # every peer that joined, lost ones too
        # Notified when a peer finishes an engine step (or is lost).
        self.ack_cond = threading.Condition()
        self.stopping = False
        self.server_sock = None
        modes = run_modes()
        self.exit_on_lost_rank = "head-exits-on-lost-rank" in modes
        self.silence_is_loss = "heartbeat-timeout" in modes
        install_triggers(engine_core.CORES.forward)
        if len(self.owners) == self.dp_size:
            self.all_joined.set()

    # -- status
    @property
    def healthy(self) -> bool:
        return self.all_joined.is_set() and not self.lost

    def step_peers(self) -> list[PeerConn]:
        """The remote ranks every engine step's collective needs, reachable or not."""
        with self.lock:
            return list(self.peers)

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
        for peer in self.step_peers():
            try:
                peer.sock.close()
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

    def _handle(self, sock: socket.socket, address: str) -> None:  # noqa: C901 (one branch per handshake message)
        send_lock = threading.Lock()
        reader = LineReader(sock)
        sock.settimeout(HEARTBEAT_TIMEOUT)
        peer = None
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
                error(f"rejected data-parallel peer {address}: {e}")
                try:
                    send(sock, send_lock, {"type": "reject", "error": str(e)})
                except OSError:
                    pass
                sock.close()
                return
            with self.lock:
                # re-check under the lock against a concurrent joiner
                if any(r in self.owners for r in range(first, first + count)):
                    msg = f"ranks {rank_str(first, count)} overlap already joined ranks"
                    error(f"rejected data-parallel peer {address}: {msg}")
                    send(sock, send_lock, {"type": "reject", "error": msg})
                    sock.close()
                    return
                for r in range(first, first + count):
                    self.owners[r] = address
                peer = PeerConn(sock, address, first, count)
                peer.send_lock = send_lock
                self.peers.append(peer)
                complete = len(self.owners) == self.dp_size
            send(sock, send_lock, {"type": "welcome", "ranks": [first, first + count - 1]})
            log(f"rank {rank_str(first, count)} joined from {address}")
            threading.Thread(target=self._heartbeat_loop, args=(peer,), daemon=True).start()
            if complete:
                self.all_joined.set()
                log(f"data-parallel ranks 0-{self.dp_size - 1} all present")
                self.broadcast({"type": "ready", "dp_size": self.dp_size})
            # keep reading heartbeats and step acknowledgements until the peer goes away
            while not self.stopping:
                try:
                    msg = reader.read()
                except TimeoutError:
                    if self.silence_is_loss:
                        raise
                    continue  # silence is not loss: real vllm watches no heartbeat
                if msg is None:
                    raise OSError("connection closed")
                if msg.get("type") == "step_done":
                    with self.ack_cond:
                        peer.acked = max(peer.acked, int(msg.get("n", 0)))
                        self.ack_cond.notify_all()
        except (OSError, ValueError) as e:
            if self.stopping or peer is None:
                return
            reason = "heartbeat timeout" if isinstance(e, socket.timeout) else str(e)
            with self.lock:
                self.lost.append(peer.ranks)
            with self.ack_cond:
                peer.alive = False
                self.ack_cond.notify_all()
            stall_if_hung()
            if self.exit_on_lost_rank:
                error(f"data-parallel rank {peer.ranks} from {address} lost ({reason}); engine core died, exiting")
                engine_core.die(1)
            error(
                f"data-parallel rank {peer.ranks} from {address} lost ({reason}); "
                "engine unhealthy, /health now returns 503"
            )
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _heartbeat_loop(self, peer: PeerConn) -> None:
        while not self.stopping and peer.alive:
            time.sleep(HEARTBEAT_INTERVAL)
            stall_if_hung()
            try:
                send(peer.sock, peer.send_lock, {"type": "heartbeat"})
            except OSError:
                return

    def broadcast(self, obj: dict) -> None:
        for peer in self.step_peers():
            if peer.alive:
                peer.send(obj)
