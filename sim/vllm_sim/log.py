"""Logging to stderr with the ``vllm-sim:`` prefix tests grep for."""

import sys
import threading

_lock = threading.Lock()


def log(msg: str) -> None:
    with _lock:
        sys.stderr.write(f"vllm-sim: {msg}\n")
        sys.stderr.flush()


def error(msg: str) -> None:
    log(f"ERROR: {msg}")


class Fatal(Exception):
    """A start-up or runtime failure: logged as ``vllm-sim: ERROR:`` and exit 1."""

    def __init__(self, msg: str, code: int = 1):
        super().__init__(msg)
        self.code = code
