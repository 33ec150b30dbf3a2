"""The headless side of the data-parallel group (see `dp` for the protocol), run by the node's
first engine core (`engine_core`): join the head, keep heartbeating, take part in every engine
step's collective, and exit non-zero (or wait forever, in `headless-waits-for-head` mode) when the
head is lost or a collective times out."""

import os
import socket
import threading
import time

from vllm_sim import faults
from vllm_sim.dp import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    LineReader,
    hello_from_args,
    rank_str,
    send,
)
from vllm_sim.log import error, log

# How often the read loop looks at the clock while nothing arrives.
TICK = 0.25


def run_headless(args, source_ip: str, load_s: float = 0.0) -> int:  # noqa: C901 (the headless node's whole life cycle)
    """Load, join the DP head and stay in the group. Returns the process exit code."""
    addr, port = args.data_parallel_address, args.data_parallel_rpc_port
    timeout = float(os.environ.get("VLLM_SIM_JOIN_TIMEOUT", "600"))
    modes = faults.run_modes()
    waits_for_head = "headless-waits-for-head" in modes
    silence_is_loss = "heartbeat-timeout" in modes
    hccl_timeout = faults.hccl_exec_timeout()
    if load_s:
        log(f"loading model weights (simulated, {load_s:g}s)")
        time.sleep(load_s)
    deadline = time.monotonic() + timeout
    first, count = args.data_parallel_start_rank, args.data_parallel_size_local
    log(
        f"headless: local data-parallel ranks {rank_str(first, count)} of "
        f"{args.data_parallel_size}; joining DP head at {addr}:{port}"
    )
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = None
    last_err = None
    attempts = 0
    while sock is None:
        attempts += 1
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(3.0)
        try:
            if source_ip and (":" in source_ip) == (family == socket.AF_INET6):
                s.bind((source_ip, 0))
            s.connect((addr, port))
            sock = s
        except OSError as e:
            s.close()
            last_err = e.strerror or str(e)
            if attempts == 1 or attempts % 10 == 0:
                log(f"headless: DP head {addr}:{port} not reachable yet ({last_err}); retrying")
            if time.monotonic() >= deadline:
                error(
                    f"could not reach DP head at {addr}:{port} within {timeout:g}s "
                    f"(VLLM_SIM_JOIN_TIMEOUT); last error: {last_err}"
                )
                return 1
            time.sleep(1.0)
    send_lock = threading.Lock()
    reader = LineReader(sock)
    try:
        send(sock, send_lock, hello_from_args(args))
        sock.settimeout(30.0)
        reply = reader.read()
    except (OSError, ValueError) as e:
        error(f"DP head at {addr}:{port} dropped the handshake: {e}")
        return 1
    if reply is None:
        error(f"DP head at {addr}:{port} closed the connection during the handshake")
        return 1
    if reply.get("type") == "reject":
        error(f"DP head at {addr}:{port} rejected this node: {reply.get('error')}")
        return 1
    if reply.get("type") != "welcome":
        error(f"unexpected reply from DP head at {addr}:{port}: {reply!r}")
        return 1
    log(f"headless: joined DP head at {addr}:{port} as rank {rank_str(first, count)}")

    def lost_head(why: str) -> int:
        faults.stall_if_hung()
        error(f"lost DP head at {addr}:{port}: {why}")
        if waits_for_head:
            log("headless: waiting for the DP head to come back (headless-waits-for-head)")
            threading.Event().wait()
        return 1

    def beat():
        while True:
            faults.stall_if_hung()
            try:
                send(sock, send_lock, {"type": "heartbeat"})
            except OSError:
                return
            time.sleep(HEARTBEAT_INTERVAL)

    threading.Thread(target=beat, name="dp-heartbeat", daemon=True).start()
    sock.settimeout(TICK)
    heard = time.monotonic()
    # Between a step's collective and the next while the group has work (a wave), this rank
    # waits in the next collective: that wait is what HCCL_EXEC_TIMEOUT bounds.
    waiting_since = None
    try:
        while True:
            try:
                msg = reader.read()
            except TimeoutError:
                msg = False
            now = time.monotonic()
            if msg is None:
                return lost_head("connection closed")
            if msg is False:
                if silence_is_loss and now - heard > HEARTBEAT_TIMEOUT:
                    return lost_head(f"no heartbeat for {HEARTBEAT_TIMEOUT:g}s")
            else:
                heard = now
                kind = msg.get("type")
                if kind == "ready":
                    log(f"headless: all {msg.get('dp_size')} data-parallel ranks joined")
                elif kind == "step":
                    faults.stall_if_hung()
                    if not faults.STALLED.is_set():
                        send(sock, send_lock, {"type": "step_done", "n": msg.get("n")})
                        waiting_since = now
                elif kind == "idle":
                    waiting_since = None
            if (
                waiting_since is not None
                and hccl_timeout
                and not faults.wedged()
                and now - waiting_since > hccl_timeout
            ):
                error(
                    f"RuntimeError: HCCL collective timed out after {hccl_timeout:g}s (HCCL_EXEC_TIMEOUT). "
                    "EI0002: The wait execution of the Notify register times out. Reason: The Notify register "
                    "has not received the Notify record from remote rank: [unknown]."
                )
                error("EngineCore encountered a fatal error; exiting")
                return 1
    except (OSError, ValueError) as e:
        return lost_head(str(e))
    finally:
        try:
            sock.close()
        except OSError:
            pass
