"""Opt-in: the simulator image on a real Docker engine (two 'nodes', --net=host).

Runs only with VLLM_SIM_DOCKER=1, as root, after `scripts/docker-engine.sh`
has built the image (SIM_IMAGE, default deepseek-r1-ascend-sim:0.1).
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

from simhelpers import MODEL, REPO, free_port, http, wait_for

IMAGE = os.environ.get("SIM_IMAGE", "deepseek-r1-ascend-sim:0.1")
FAKE_ROOT = "/var/lib/deepseek-r1-sim/pytest"

pytestmark = pytest.mark.skipif(
    os.environ.get("VLLM_SIM_DOCKER") != "1" or shutil.which("docker") is None
    or os.geteuid() != 0,
    reason="set VLLM_SIM_DOCKER=1 (root, Docker engine running) to run",
)


def sh(*cmd, check=True, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout)


def node_args(node):
    root = f"{FAKE_ROOT}/{node}"
    args = []
    for d in ("davinci0", "davinci1", "davinci_manager", "devmm_svm", "hisi_hdc"):
        args += ["--device", f"{root}/dev/{d}:/dev/{d}"]
    args += ["-v", f"{root}/usr/local/Ascend/driver:/usr/local/Ascend/driver:ro",
             "-v", f"{root}/usr/local/dcmi:/usr/local/dcmi:ro",
             "-v", f"{root}/etc/hccn.conf:/etc/hccn.conf:ro"]
    return args


@pytest.fixture
def containers():
    names = []
    for node in ("node0", "node1"):
        sh(sys.executable, str(REPO / "sim" / "fake_host.py"), f"{FAKE_ROOT}/{node}",
           "--npus", "2")
    yield names
    for n in names:
        sh("docker", "rm", "-f", n, check=False)
    sh(sys.executable, str(REPO / "sim" / "fake_host.py"), FAKE_ROOT, "--remove", check=False)


def test_two_node_cluster_in_docker(containers):
    sh("docker", "image", "inspect", IMAGE)
    hp, dpp = free_port(), free_port()
    tag = f"{os.getpid()}-{int(time.time())}"
    common = ["--served-model-name", "ds", "--tensor-parallel-size", "1",
              "--data-parallel-size", "4", "--data-parallel-size-local", "2",
              "--data-parallel-address", "127.0.0.1", "--data-parallel-rpc-port", str(dpp)]
    env = ["-e", "HCCL_SOCKET_IFNAME=lo", "-e", "GLOO_SOCKET_IFNAME=lo",
           "-e", "TP_SOCKET_IFNAME=lo", "-e", "VLLM_SIM_LOAD_SECONDS=0.5"]
    for node, ip, extra in (("node0", "127.0.0.1", ["--port", str(hp)]),
                            ("node1", "127.0.0.2", ["--headless",
                                                    "--data-parallel-start-rank", "2"])):
        name = f"vllm-sim-{node}-{tag}"
        containers.append(name)
        sh("docker", "run", "-d", "--name", name, "--net=host", *node_args(node), *env,
           "-e", f"HCCL_IF_IP={ip}", IMAGE, "vllm", "serve", MODEL, *common, *extra)
    head, worker = containers
    wait_for(lambda: http("GET", f"http://127.0.0.1:{hp}/health", timeout=2)[0] == 200, 30,
             what="cluster ready in Docker")
    logs = sh("docker", "logs", head).stderr
    assert "vllm-sim: rank 2-3 joined from 127.0.0.2" in logs
    assert "vllm-sim: all 4 data-parallel ranks joined; ready" in logs
    st, r = http("POST", f"http://127.0.0.1:{hp}/v1/completions",
                 {"model": "ds", "prompt": "The future of AI is", "max_tokens": 5})
    assert st == 200 and r["usage"]["completion_tokens"] == 5
    sh("docker", "kill", worker)
    wait_for(lambda: http("GET", f"http://127.0.0.1:{hp}/health", timeout=2)[0] == 503, 10,
             what="503 after the headless container died")
