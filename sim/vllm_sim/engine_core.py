"""vllm's engine-core processes.

Real `vllm serve` is not one process: the API server (or, with --headless, a process manager)
starts one `VLLM::EngineCore_DP<rank>` process per local data-parallel rank, and each engine core
owns its rank's NPUs (its TP workers do, in real vllm). They share the API server's process group.
Killed with SIGTERM, the API server shuts its engine cores down; killed with SIGKILL (an OOM kill,
a crash, a supervisor's forced stop of one pid) it cannot, and the engine cores live on as orphans
that keep the NPU memory (vllm #55510, #34643; the fixes #55846, #34816 are not in 0.18). The next
`vllm serve` on those NPUs then fails its memory check at start-up.

The simulator forks the engine cores before it starts any thread. Each one holds an exclusive
flock on its NPUs' device files (/dev/davinciN, or VLLM_SIM_DEV_DIR); a new engine core that
cannot take one fails like vllm-ascend's worker does when another process holds the memory.
On a headless node the first engine core also carries the node's data-parallel connection to
the head (real headless engine cores talk to the head directly), so killing the headless main
process leaves the group working. An orphan lingers until it is killed, or for
VLLM_SIM_ORPHAN_SECONDS after its parent is gone (unset: forever; 0: at once, like vllm with the
parent-death fix).
"""

import fcntl
import os
import signal
import sys
import threading
import time
import traceback

from vllm_sim import faults
from vllm_sim.log import Fatal, error, log

# What torch_npu reports for a 64 GB Atlas 800 A2 NPU, and the share an orphan keeps.
NPU_TOTAL_GIB = 60.96
HELD_UTILIZATION = 0.9
STOP_TIMEOUT_S = 5.0


class Core:
    def __init__(self, name: str, pid: int, status_fd: int, devices: list[str]):
        self.name, self.pid, self.status_fd, self.devices = name, pid, status_fd, devices
        self.exit_code = None


class EngineCores:
    def __init__(self):
        self.cores: list[Core] = []
        self.lock = threading.Lock()
        self.stopping = False

    @property
    def alive(self) -> list[Core]:
        return [c for c in self.cores if c.exit_code is None]

    def start(self, args, npus: list[str], dev_dir: str, body=None) -> None:
        """Fork one engine core per local DP rank, each holding tp of `npus`; `body` (the
        headless node's side of the DP group) runs in the first. Raises Fatal like vllm when
        one cannot take its NPUs."""
        orphan_seconds()  # refuse a bad value before forking
        utilization = args.gpu_memory_utilization or 0.9
        tp, first = args.tensor_parallel_size, args.data_parallel_start_rank
        for i in range(args.data_parallel_size_local):
            name = f"EngineCore_DP{first + i}"
            devices = [os.path.join(dev_dir, n) for n in npus[i * tp : (i + 1) * tp]]
            read_fd, write_fd = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                for other in self.cores:
                    os.close(other.status_fd)
                _core_process(name, devices, write_fd, body if i == 0 else None, utilization)
            os.close(write_fd)
            self.cores.append(Core(name, pid, read_fd, devices))
        failed = []
        for core in self.cores:
            with os.fdopen(core.status_fd, "rb") as status:
                if status.readline().strip() != b"ok":
                    failed.append(core)
        if failed:
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while any(c.exit_code is None for c in failed) and time.monotonic() < deadline:
                self.reap()
                time.sleep(0.02)
            self.stop()
            codes = {c.name: c.exit_code for c in failed}
            raise Fatal(
                f"RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {codes}"
            )
        log(f"engine core(s) {', '.join(f'{c.name} pid={c.pid}' for c in self.cores)} hold their NPUs")

    def label(self) -> str:
        """How the first engine core's log lines begin, as vllm prefixes them."""
        core = self.cores[0] if self.cores else None
        return f"({core.name} pid={core.pid})" if core else f"(EngineCore pid={os.getpid()})"

    def reap(self) -> None:
        with self.lock:
            for core in self.alive:
                try:
                    pid, status = os.waitpid(core.pid, os.WNOHANG)
                except ChildProcessError:
                    core.exit_code = -1
                    continue
                if pid:
                    core.exit_code = os.waitstatus_to_exitcode(status)

    def forward(self, signum: int) -> None:
        for core in self.alive:
            try:
                os.kill(core.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """As vllm's API server shuts its engine cores down: SIGTERM, then SIGKILL."""
        self.stopping = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self.forward(sig)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline:
                self.reap()
                if not self.alive:
                    return
                time.sleep(0.02)

    def wait_any(self) -> Core:
        """Block until an engine core exits (the headless main process does nothing else)."""
        while True:
            self.reap()
            done = [c for c in self.cores if c.exit_code is not None]
            if done:
                return done[0]
            time.sleep(0.1)

    def watch(self, on_death) -> None:
        """In the API server: `on_death(core)` once an engine core exits while not stopping."""

        def run():
            while not self.stopping:
                self.reap()
                dead = [c for c in self.cores if c.exit_code is not None]
                if dead and not self.stopping:
                    on_death(dead[0])
                    return
                time.sleep(0.2)

        threading.Thread(target=run, name="engine-core-monitor", daemon=True).start()


CORES = EngineCores()


def die(code: int) -> None:
    """Exit the API server as vllm does after its engine died: the engine cores go with it."""
    CORES.stop()
    sys.stderr.flush()
    os._exit(code)


def orphan_seconds() -> float | None:
    raw = os.environ.get("VLLM_SIM_ORPHAN_SECONDS", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise Fatal(f"VLLM_SIM_ORPHAN_SECONDS={raw!r} must be a number of seconds >= 0 (unset: linger forever)")
    return value


def _set_process_name(name: str) -> None:
    """As setproctitle does for vllm: ps and /proc/PID/comm show VLLM::EngineCor (15 chars)."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(f"VLLM::{name}"[:15])
    except OSError:
        pass


def _core_process(name, devices, status_fd, body, utilization) -> None:
    """The engine core's whole life, in the forked child: never returns."""
    code = 1
    try:
        code = _core(name, devices, status_fd, body, utilization)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        error(f"({name} pid={os.getpid()}) {traceback.format_exc().strip()}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _core(name, devices, status_fd, body, utilization) -> int:
    _set_process_name(name)
    me = f"({name} pid={os.getpid()})"
    parent = os.getppid()

    def terminate(signum, frame):
        os._exit(0)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    faults.install_triggers()
    held = []
    for path in devices:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # vllm-ascend's NPUWorker._init_device: another process holds the NPU's memory.
            wanted = round(NPU_TOTAL_GIB * utilization, 2)
            free = round(NPU_TOTAL_GIB * (1 - HELD_UTILIZATION), 2)
            error(
                f"{me} ValueError: Free memory on device ({free}/{NPU_TOTAL_GIB} GiB) on startup is less than "
                f"desired GPU memory utilization ({utilization:g}, {wanted} GiB). Decrease GPU memory "
                "utilization or reduce GPU memory used by other processes."
            )
            error(f"{me} EngineCore failed to start.")
            os.write(status_fd, b"fail\n")
            return 1
        except OSError as e:
            error(f"{me} RuntimeError: cannot open NPU {path}: {e.strerror or e}")
            error(f"{me} EngineCore failed to start.")
            os.write(status_fd, b"fail\n")
            return 1
        held.append(fd)
    os.write(status_fd, b"ok\n")
    os.close(status_fd)
    limit = orphan_seconds()
    if limit is not None:
        threading.Thread(target=_exit_when_orphaned, args=(me, parent, limit), daemon=True).start()
    if body is not None:
        return body()
    while True:
        time.sleep(3600)


def _exit_when_orphaned(me: str, parent: int, limit: float) -> None:
    since = None
    while True:
        if os.getppid() != parent:
            since = since if since is not None else time.monotonic()
            if time.monotonic() - since >= limit:
                log(f"{me} the API server is gone; exiting (VLLM_SIM_ORPHAN_SECONDS={limit:g})")
                sys.stderr.flush()
                os._exit(0)
        time.sleep(min(0.2, max(limit, 0.05)))
