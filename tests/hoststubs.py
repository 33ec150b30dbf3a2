"""What the host-check tests share: recorded tool output per tool, and stub tools for running
the check commands under a real POSIX `sh` on a machine without Ascend hardware."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

# One folder per tool (npu_smi/, hccn/, ...), named like its module in checks/.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> str:
    """A recorded output, e.g. `fixture("npu_smi/a2_healthy.txt")`."""
    return (FIXTURES / name).read_text()


def stub(path: Path, body: str) -> str:
    """An executable shell script standing in for a tool."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def run_sh(cmd: str, env_path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, env=env, timeout=30)


# hccn_tool as the checks call it: NPU 1's link is down, everything else answers healthily.
HCCN_STUB = r"""
i="$2"
case "$3" in
  -link) if [ "$i" = 1 ]; then echo "link status: DOWN"; else echo "link status: UP"; fi ;;
  -net_health) echo "net health status: Success" ;;
  -ip) printf 'ipaddr:10.20.0.%s\nnetmask:255.255.255.0\n' "$((11 + i))" ;;
  -tls) echo "dev_id:$i, tls switch[0](0:disable, 1:enable), tls alarm time threshold[60]days" ;;
  -ping)
    shift 5
    [ "$1" = address ] || [ "$1" = ipv6_address ]
    echo "device $i PING $2"; echo "recv seq=0,time=0.05ms"
    echo "1 packets transmitted, 1 received, 0.00% packet loss" ;;
esac
"""
