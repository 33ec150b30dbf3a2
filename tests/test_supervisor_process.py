"""The supervisor's I/O with real processes and a real file system (no container): what it stops,
what it writes, and what it outlives. The test process stands in for PID 1 as a subreaper, so
vllm's orphans are reparented to it as they are to the supervisor in a container."""

import ctypes
import json
import os
import time
from dataclasses import replace

import pytest
from test_supervisor import SETTINGS

from supervision.protocol import State
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
