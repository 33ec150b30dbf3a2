"""Fixtures for the vllm simulator tests (helpers live in simhelpers.py)."""

import os

import pytest
from simhelpers import MODEL, SERVED, Proc, make_fake_node


@pytest.fixture
def sim(tmp_path):
    """Factory: sim.start(args, ip=..., npus=..., env={...}) -> Proc."""
    procs = []
    net = tmp_path / "net"
    (net / "lo").mkdir(parents=True)

    class Sim:
        model = MODEL
        served = SERVED

        def env(self, ip="127.0.0.1", npus=2, extra=None, node="n"):
            dev = make_fake_node(tmp_path / f"{node}-{npus}", npus)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HCCL_", "OPENAI_"))}
            env.update(
                {
                    "VLLM_SIM_DEV_DIR": str(dev),
                    "VLLM_SIM_ALLOW_REGULAR_FILES": "1",
                    "VLLM_SIM_NET_DIR": str(net),
                    "VLLM_SIM_LOAD_SECONDS": "0.2",
                    "VLLM_SIM_JOIN_TIMEOUT": "10",
                    "HCCL_SOCKET_IFNAME": "lo",
                    "GLOO_SOCKET_IFNAME": "lo",
                    "TP_SOCKET_IFNAME": "lo",
                    "PYTHONUNBUFFERED": "1",
                }
            )
            if ip is not None:
                env["HCCL_IF_IP"] = ip
            env.update(extra or {})
            return env

        def start(self, args, ip="127.0.0.1", npus=2, extra=None, node="n"):
            p = Proc(args, self.env(ip, npus, extra, node), tmp_path / f"proc{len(procs)}.log")
            procs.append(p)
            return p

        def run(self, args, ip="127.0.0.1", npus=2, extra=None, timeout=15.0):
            p = self.start(args, ip, npus, extra)
            rc = p.wait(timeout)
            return rc, p.log

    yield Sim()
    for p in procs:
        p.close()
