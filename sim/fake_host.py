#!/usr/bin/env python3
"""Prepare (or remove) a fake Ascend host root for the vllm simulator.

    python3 sim/fake_host.py ROOT --npus N      # create (idempotent)
    python3 sim/fake_host.py ROOT --remove      # delete ROOT again

Creates under ROOT what a deployment mounts into the vllm-ascend container:
  dev/davinci0..N-1, dev/davinci_manager, dev/devmm_svm, dev/hisi_hdc
      character device nodes (major 1, minor 3: the same as /dev/null) so
      `docker run --device ROOT/dev/davinci0:/dev/davinci0` works;
  usr/local/dcmi/, usr/local/Ascend/driver/lib64/,
  usr/local/Ascend/driver/version.info, etc/ascend_install.info,
  etc/hccn.conf, usr/bin/hccn_tool, usr/local/Ascend/driver/tools/hccn_tool,
  usr/local/bin/npu-smi (tiny shell stand-ins).

mknod needs root. Docker only accepts --device paths that are real device
nodes on a filesystem NOT mounted `nodev`; /tmp is often nodev (tmpfs), so put
ROOT under /var/lib, e.g. /var/lib/deepseek-r1-sim/node0.
Test-only: never used in real deployments.
"""

import argparse
import os
import shutil
import stat
import sys

CONTROL_DEVICES = ("davinci_manager", "devmm_svm", "hisi_hdc")
DRIVER_VERSION = "24.1.rc3"

HCCN_TOOL = """#!/bin/sh
# vllm-sim stand-in for hccn_tool (fake Ascend host; test only)
echo "hccn_tool (vllm-sim stand-in): $*"
case "$*" in
  *-link*-g*) echo "link status: UP" ;;
  *-ip*-g*) echo "ipaddr:192.168.100.1"; echo "netmask:255.255.255.0" ;;
  *-net_health*-g*) echo "net health status: Success" ;;
esac
exit 0
"""

NPU_SMI = """#!/bin/sh
# vllm-sim stand-in for npu-smi (fake Ascend host; test only)
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
n=$(ls "$ROOT/dev" 2>/dev/null | grep -c '^davinci[0-9][0-9]*$')
echo "+------------------------------------------------------------------------------+"
echo "| npu-smi 24.1.rc3 (vllm-sim stand-in)          Version: 24.1.rc3              |"
echo "+------------------------------------------------------------------------------+"
i=0
while [ "$i" -lt "$n" ]; do
  echo "| $i     910B3               | OK            | 90.0        40                 |"
  i=$((i + 1))
done
exit 0
"""


def hccn_conf(npus: int) -> str:
    lines = []
    for i in range(npus):
        lines.append(f"address_{i}=192.168.100.{i + 1}")
        lines.append(f"netmask_{i}=255.255.255.0")
        lines.append(f"netdetect_{i}=192.168.100.254")
        lines.append(f"gateway_{i}=192.168.100.254")
    return "\n".join(lines) + "\n"


def _mknod(path: str) -> str:
    if os.path.lexists(path):
        st = os.lstat(path)
        if stat.S_ISCHR(st.st_mode):
            return "exists"
        raise SystemExit(f"fake_host: ERROR: {path} exists and is not a character device")
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        raise SystemExit(f"fake_host: ERROR: mknod {path}: permission denied (run as root)") from None
    os.chmod(path, 0o666)
    return "created"


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    os.chmod(path, mode)


def create(root: str, npus: int) -> None:
    root = os.path.abspath(root)
    dev = os.path.join(root, "dev")
    os.makedirs(dev, exist_ok=True)
    existing = sorted(n for n in os.listdir(dev) if n.startswith("davinci") and n[7:].isdigit())
    extra = [n for n in existing if int(n[7:]) >= npus]
    for n in extra:  # shrink: keep the count exactly N
        os.unlink(os.path.join(dev, n))
    for i in range(npus):
        _mknod(os.path.join(dev, f"davinci{i}"))
    for name in CONTROL_DEVICES:
        _mknod(os.path.join(dev, name))
    for d in (
        "usr/local/dcmi",
        "usr/local/Ascend/driver/lib64",
        "usr/local/Ascend/driver/tools",
        "usr/bin",
        "usr/local/bin",
        "etc",
    ):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    _write(
        os.path.join(root, "usr/local/Ascend/driver/version.info"),
        f"Version={DRIVER_VERSION}\nascendhal_version=7.35.23\naicpu_version=1.0\n",
    )
    _write(
        os.path.join(root, "etc/ascend_install.info"),
        "UserName=HwHiAiUser\nUserGroup=HwHiAiUser\n"
        "Driver_Install_Type=full\n"
        "Driver_Install_Path_Param=/usr/local/Ascend\n"
        f"Driver_Install_Status=complete\nDriver_Version={DRIVER_VERSION}\n",
    )
    conf = os.path.join(root, "etc/hccn.conf")
    if os.path.exists(conf):
        os.unlink(conf)  # follows --npus
    _write(conf, hccn_conf(npus))
    for rel in ("usr/bin/hccn_tool", "usr/local/Ascend/driver/tools/hccn_tool"):
        _write(os.path.join(root, rel), HCCN_TOOL, 0o755)
    _write(os.path.join(root, "usr/local/bin/npu-smi"), NPU_SMI, 0o755)
    print(
        f"fake_host: {root}: {npus} NPU device node(s) dev/davinci0..{npus - 1}, control devices and driver files ready"
    )


def remove(root: str) -> None:
    root = os.path.abspath(root)
    if root in ("/", "/var", "/var/lib", "/tmp", os.path.expanduser("~")):
        raise SystemExit(f"fake_host: ERROR: refusing to remove {root}")
    if os.path.exists(root):
        shutil.rmtree(root)
        print(f"fake_host: removed {root}")
    else:
        print(f"fake_host: {root} does not exist")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fake_host.py", description=__doc__.split("\n\n")[0])
    p.add_argument("root", help="fake host root (use a path under /var/lib, not /tmp)")
    p.add_argument("--npus", type=int, default=8, help="number of davinci devices (default 8)")
    p.add_argument("--remove", action="store_true", help="delete ROOT")
    args = p.parse_args(argv)
    if args.remove:
        remove(args.root)
    else:
        if args.npus < 0:
            p.error("--npus must be >= 0")
        create(args.root, args.npus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
