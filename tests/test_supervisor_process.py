"""The supervisor's I/O with real processes and a real file system (no container): what it stops,
what it writes, what it passes through and what it outlives. The test process stands in for PID 1
as a subreaper, so vllm's orphans are reparented to it as they are to the supervisor in a
container."""

import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace

import pytest
from test_supervisor import SETTINGS

from supervision.protocol import KV_TRANSFER_FAILURES, State
from supervision.supervisor import Supervisor

PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture
def subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def supervisor(tmp_path, argv, **settings) -> Supervisor:
    state_file = str(tmp_path / "state" / "state.json")
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    return Supervisor(replace(SETTINGS, state_file=state_file, stop_timeout_seconds=1, **settings), argv)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose but the process table.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_an_engine_core_that_outlives_its_api_server_is_stopped_before_anything_starts(tmp_path, subreaper):
    # vllm's main process dies; the engine core it spawned lives on, holding the NPUs.
    pidfile = tmp_path / "engine.pid"
    sup = supervisor(tmp_path, ["sh", "-c", f"sleep 600 & echo $! > {pidfile}; exit 1"])
    sup.start_vllm()
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() and (sup.reap() or not sup.vllm_up))
    engine = int(pidfile.read_text())
    assert sup.exit_status == 1 and alive(engine)
    assert sup.stop_vllm() is True
    assert not alive(engine)


def test_an_engine_core_that_ignores_sigterm_is_killed(tmp_path, subreaper):
    pidfile = tmp_path / "engine.pid"
    stubborn = f"sh -c 'trap \"\" TERM; while :; do sleep 0.1; done' & echo $! > {pidfile}; wait"
    sup = supervisor(tmp_path, ["sh", "-c", stubborn])
    sup.start_vllm()
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip())
    engine = int(pidfile.read_text())
    assert sup.stop_vllm() is True
    assert not alive(engine)


def test_the_state_is_written_durably_and_only_when_a_restart_would_need_it(tmp_path):
    sup = supervisor(tmp_path, ["true"])
    sup.set_state(State(gen=2, phase="serving"))
    path = sup.s.state_file
    written = os.stat(path).st_mtime_ns
    # A poll's bookkeeping (token progress, health clocks) never reaches the disk.
    time.sleep(0.01)
    sup.set_state(State(gen=2, phase="serving", progress_at=5.0, tokens=9.0, unhealthy_since=1.0, served=True))
    assert os.stat(path).st_mtime_ns == written
    sup.set_state(State(gen=3, phase="stopping"))
    assert json.loads(open(path).read())["gen"] == 3


def test_a_state_directory_that_cannot_be_written_is_outlived(tmp_path, capsys):
    sup = supervisor(tmp_path, ["true"])
    # What a full or read-only disk does to the write (root ignores permission bits).
    os.mkdir(sup.s.state_file + ".tmp")
    sup.set_state(State(gen=1, phase="serving"))
    sup.set_state(State(gen=2, phase="serving"))
    assert sup.state.gen == 2
    log = capsys.readouterr().err
    assert log.count(f"cannot save {sup.s.state_file}: IsADirectoryError") == 1
    assert "(carrying on; vllm is not affected)" in log


@pytest.mark.parametrize("content", ["", "{", '{"gen": "7"}', "null"])
def test_a_restarted_container_whose_state_is_unreadable_restarts_the_group(tmp_path, content):
    first = supervisor(tmp_path, ["true"])
    assert first.load() == (None, None)  # fresh: no marker yet
    with open(first.s.state_file, "w") as f:
        f.write(content)
    again = supervisor(tmp_path, ["true"])
    state, lost = again.load()
    assert state is None and lost


def test_a_restarted_container_reads_its_saved_state(tmp_path):
    first = supervisor(tmp_path, ["true"])
    first.load()
    first.set_state(State(gen=5, phase="capped", consecutive=6, restarts=9, capped=True))
    assert supervisor(tmp_path, ["true"]).load() == (
        State(gen=5, phase="capped", consecutive=6, restarts=9, capped=True),
        None,
    )


# What vllm writes, and how: lines cut across writes, binary output, a line longer than any buffer,
# a failed KV transfer as vllm-ascend v0.18.0 logs it (counted once), and a last line without end.
CHILD = r"""
import sys, time
out, err = sys.stdout.buffer, sys.stderr.buffer
out.write(b"INFO [api_server.py:1] Starting vLLM API server\n"); out.flush()
err.write(b"(EngineCore_DP0 pid=7) ERROR [mooncake_connector.py:547] Mooncake transfer failed for request a\n")
err.write(b"(EngineCore_DP0 pid=7) ERROR [mooncake_connector.py:441] Failed to transfer KV cache for request a: "
          b"Mooncake transfer failed, ret: -1\nTraceback (most recent call last):\n"
          b"RuntimeError: Mooncake transfer failed, ret: -1\n"); err.flush()
out.write(b"\xff\xfe\x00\x1b[2K" * 50000 + b"\n" + b"y" * 3_000_000 + b"\n")
out.write(b"ERROR Mooncake trans"); out.flush(); time.sleep(0.1)
out.write(b"fer failed for request b\nINFO done\n")
err.write(b"ERROR Mooncake transfer failed for request c"); err.flush()
"""


def child_output() -> tuple[bytes, bytes]:
    """What CHILD writes to its stdout and stderr, read without any supervisor."""
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, check=True, timeout=30)
    return done.stdout, done.stderr


def metrics_of(sup: Supervisor) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{sup.s.port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_vllms_output_passes_through_unchanged_while_failed_kv_transfers_are_counted(tmp_path, capfdbinary):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sup = supervisor(tmp_path, [sys.executable, "-c", CHILD], bind="127.0.0.1", port=port)
    sup.serve_http()
    assert f"{KV_TRANSFER_FAILURES} 0" in metrics_of(sup).splitlines()
    sup.start_vllm()
    assert sup.proc.wait(timeout=30) == 0
    for relay in sup.relays:
        relay.join(timeout=10)
        assert not relay.is_alive()
    assert f"{KV_TRANSFER_FAILURES} 3" in metrics_of(sup).splitlines()
    out, err = capfdbinary.readouterr()
    expected_out, expected_err = child_output()
    assert out == expected_out
    # After the supervisor's own line announcing the generation.
    assert err.endswith(expected_err) and err.startswith(b"supervisor[a2-1]: starting generation 0")


def test_vllm_never_blocks_on_its_output_when_the_containers_output_is_gone(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)
    noisy = "import sys; sys.stdout.buffer.write(b'ERROR Mooncake transfer failed for request r\\n' * 200000)"
    child = subprocess.Popen([sys.executable, "-c", noisy], stdout=subprocess.PIPE, bufsize=0)
    sup = supervisor(tmp_path, ["true"])
    relay = threading.Thread(target=sup.relay, args=(child.stdout, write_end), daemon=True)
    relay.start()
    try:
        assert child.wait(timeout=30) == 0
        relay.join(timeout=10)
    finally:
        os.close(write_end)
    assert not relay.is_alive() and sup.kv_failures == 200000
