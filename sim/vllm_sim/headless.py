"""The headless side of the data-parallel handshake (see `dp` for the protocol): join the head,
keep heartbeating, and exit non-zero (or wait forever, in `headless-waits-for-head` mode) when
the head is lost."""

import os
import socket
import threading
import time

from vllm_sim.dp import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    LineReader,
    hello_from_args,
    install_hang_trigger,
    rank_str,
    run_modes,
    send,
    stall_if_hung,
)
from vllm_sim.log import error, log


def run_headless(args, source_ip: str, stop_event: threading.Event) -> int:  # noqa: C901 (the headless node's whole life cycle)
    """Join the DP head and stay connected. Returns the process exit code."""
    addr, port = args.data_parallel_address, args.data_parallel_rpc_port
    timeout = float(os.environ.get("VLLM_SIM_JOIN_TIMEOUT", "600"))
    waits_for_head = "headless-waits-for-head" in run_modes()
    install_hang_trigger()
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
        if stop_event.is_set():
            return 0
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
            stop_event.wait(1.0)
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
        stall_if_hung()
        error(f"lost DP head at {addr}:{port}: {why}")
        if waits_for_head:
            log("headless: waiting for the DP head to come back (headless-waits-for-head)")
            threading.Event().wait()
        return 1

    def beat():
        while not stop_event.is_set():
            stall_if_hung()
            try:
                send(sock, send_lock, {"type": "heartbeat"})
            except OSError:
                return
            stop_event.wait(HEARTBEAT_INTERVAL)

    threading.Thread(target=beat, name="dp-heartbeat", daemon=True).start()
    sock.settimeout(HEARTBEAT_TIMEOUT)
    try:
        while not stop_event.is_set():
            try:
                msg = reader.read()
            except TimeoutError:
                if stop_event.is_set():
                    break
                return lost_head(f"no heartbeat for {HEARTBEAT_TIMEOUT:g}s")
            if msg is None:
                if stop_event.is_set():
                    break
                return lost_head("connection closed")
            if msg.get("type") == "ready":
                log(f"headless: all {msg.get('dp_size')} data-parallel ranks joined")
    except (OSError, ValueError) as e:
        if not stop_event.is_set():
            return lost_head(str(e))
    finally:
        try:
            sock.close()
        except OSError:
            pass
    return 0
