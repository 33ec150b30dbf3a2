"""Shared helpers for the vllm simulator tests: run `sim/vllm` as subprocesses on
loopback with a fake device dir and a fake /sys/class/net, no Docker."""

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
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VLLM = REPO / "sim" / "vllm"

MODEL = "/models/DeepSeek-R1-W8A8"
SERVED = "deepseek-r1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http(method, url, body=None, headers=None, timeout=10.0):
    """Return (status, parsed JSON or raw text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except OSError:
        return None, None
    text = raw.decode()
    try:
        return status, json.loads(text) if text else ""
    except ValueError:
        return status, text


def stream(port, max_tokens=4000, timeout=30.0, model=SERVED):
    """A long streaming completion (2 ms a token): iterate the response for its chunks."""
    body = json.dumps({"model": model, "prompt": "hi", "max_tokens": max_tokens, "stream": True}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/completions", data=body, headers={"Content-Type": "application/json"}
    )
    return urllib.request.urlopen(request, timeout=timeout)


def in_background(port, max_tokens=4000, timeout=30.0) -> threading.Thread:
    """A long streaming completion read to its end (or failure) by a thread."""

    def run():
        try:
            with stream(port, max_tokens, timeout) as response:
                for _ in response:
                    pass
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def metric(port, series) -> float:
    """One series' value (summed over labels) from the head's /metrics."""
    status, text = http("GET", f"http://127.0.0.1:{port}/metrics", timeout=2)
    assert status == 200, status
    values = re.findall(rf"^{re.escape(series)}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
    assert values, series
    return sum(float(v) for v in values)


def make_fake_node(root: Path, npus: int) -> Path:
    dev = root / "dev"
    dev.mkdir(parents=True, exist_ok=True)
    for i in range(npus):
        (dev / f"davinci{i}").touch()
    for n in ("davinci_manager", "devmm_svm", "hisi_hdc"):
        (dev / n).touch()
    return dev


class Proc:
    def __init__(self, args, env, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.p = subprocess.Popen(
            [sys.executable, str(VLLM), *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout=15.0) -> int:
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process did not exit in {timeout}s; log:\n{self.log}") from None

    def wait_log(self, text, timeout=10.0):
        wait_for(lambda: text in self.log, timeout, what=f"log line {text!r}; log:\n{self.log}")

    def kill(self, sig=signal.SIGKILL):
        """Signal `vllm serve` itself (the API server); its engine cores outlive a SIGKILL."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)

    def members(self) -> dict[int, str]:
        """The live (not zombie) processes of its process group: pid -> /proc/PID/comm. The
        engine cores show as VLLM::EngineCor, children of `vllm serve` or orphans."""
        self.p.poll()
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if int(fields[2]) == self.p.pid and fields[0] != "Z":
                found[int(entry)] = comm
        return found

    def engine_cores(self) -> list[int]:
        return sorted(pid for pid, comm in self.members().items() if comm.startswith("VLLM::EngineCor"))

    def group_alive(self) -> bool:
        return bool(self.members())

    def killpg(self, sig=signal.SIGKILL, timeout=10.0):
        """Signal the whole process group, as the supervisor does, and wait until it is gone."""
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            return
        wait_for(lambda: not self.group_alive(), timeout, what=f"process group {self.p.pid} to exit")

    def close(self):
        self.p.poll()
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.kill()
        self._log.close()
