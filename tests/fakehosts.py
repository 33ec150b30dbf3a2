"""Healthy Ascend hosts as the mocked program's commands see them.

Each remote/local command's stdout is what a healthy node would print for that check, in the
documented formats; a test replaces any one of them (by resource name) to inject a failure.
"""

from __future__ import annotations

import json
import re
import shlex

from hoststubs import fixture

from checks import group_view, membership, npu_holders
from checks.steps import STEPS, node_script
from supervision.protocol import State, metrics_text

CHECK = re.compile(r"^(?P<node>.+)-check-(?P<check>[a-z-]+)$")


def _npu_ip(node_index: int, npu: int) -> str:
    return f"10.20.{node_index}.{11 + npu}"


def hccn_output(node_index: int, npus: int, tls: str = "0") -> str:
    sections = []
    for i in range(npus):
        sections += [
            f"=== npu {i} link",
            "link status: UP",
            f"=== npu {i} net_health",
            "net health status: Success",
            f"=== npu {i} ip",
            f"ipaddr:{_npu_ip(node_index, i)}",
            "netmask:255.255.255.0",
            f"=== npu {i} tls",
            f"dev_id:{i}, tls switch[{tls}](0:disable, 1:enable), tls preconfigured[1](0:non-preset, 1:preset)",
        ]
    return "\n".join(sections + ["=== end"]) + "\n"


def ping_output(script: str, failing_peer_ip: str | None = None) -> str:
    lines = []
    for header in re.findall(r"=== ping \d+ \S+ \d+ [0-9.]+", script):
        ip = header.rsplit(" ", 1)[1]
        received = 0 if ip == failing_peer_ip else 3
        lines += [header, f"3 packets transmitted, {received} received, {100 - received * 100 // 3:.2f}% packet loss"]
    return "\n".join(lines + ["=== end"]) + "\n"


def image_host_output(inspect: str, version_info: str, chip: str, toolkit: str | None = None) -> str:
    """What the image-host step prints (checks/image.py), from its parts' recordings."""
    parts = ["=== image", inspect.rstrip("\n")]
    if toolkit is not None:
        parts += ["=== toolkit", toolkit.rstrip("\n")]
    parts += ["=== version.info", version_info.rstrip("\n"), "=== chip 0", chip.rstrip("\n"), "=== end"]
    return "\n".join(parts) + "\n"


def smoke_output(text: str = " bright, and it is already here.") -> str:
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "deepseek_r1",
        "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 6, "completion_tokens": 50, "total_tokens": 56},
    }
    return json.dumps(body) + "\n200 1.532\n"


BENCHMARK_RESULT = {
    "backend": "vllm",
    "completed": 200,
    "request_throughput": 0.98,
    "output_throughput": 125.4,
    "mean_ttft_ms": 210.5,
    "median_ttft_ms": 190.1,
    "p99_ttft_ms": 480.2,
    "mean_tpot_ms": 35.2,
    "median_tpot_ms": 34.8,
    "p99_tpot_ms": 51.0,
}

LM_EVAL_TABLE = """\
|Tasks|Version|     Filter     |n-shot|  Metric   |   |Value |   |Stderr|
|-----|------:|----------------|-----:|-----------|---|-----:|---|-----:|
|gsm8k|      3|flexible-extract|     5|exact_match|↑  |0.9553|±  |0.0057|
|     |       |strict-match    |     5|exact_match|↑  |0.9545|±  |0.0057|
"""


class FakeHosts:
    """What each node prints for a step, keyed by resource name; `overrides` wins."""

    def __init__(self, nodes: list[dict], npus: int, overrides: dict[str, str] | None = None):
        self.nodes = {n["name"]: (i, n) for i, n in enumerate(nodes)}
        self.npus = npus
        self.overrides = overrides or {}

    def run(self, name: str, create: str) -> str:
        """A step's stdout as `python -m checks` prints it: the judge's report of the nodes' output."""
        argv = shlex.split(create)
        assert argv[1:3] == ["-m", "checks"], create
        step, spec = STEPS[argv[3]], json.loads(argv[4])
        script = node_script(argv[3], spec)
        if argv[3] == membership.DRAIN:
            # A membership's delete: its group left the router with nothing in flight.
            return json.dumps(step.judge(spec, {spec["node"]: "drained after 0s, 0 requests left\n"}))
        if len(spec["nodes"]) == 1:
            outputs = {spec["nodes"][0]: self.stdout(name, script)}
        else:
            # A step across nodes hears from each node as that node's own resource would.
            suffix = name.removeprefix(spec["node"])
            outputs = {node: self.stdout(node + suffix, script) for node in spec["nodes"]}
        return json.dumps(step.judge(spec, outputs), sort_keys=True)

    def stdout(self, name: str, script: str) -> str:
        if name in self.overrides:
            return self.overrides[name]
        match = CHECK.match(name)
        if match:
            index, node = self.nodes[match["node"]]
            return self._check(match["check"], index, node, script)
        if name.endswith("-router-membership"):
            # A first deployment: no other group serves yet.
            return "admitted when ready\n"
        if name.endswith("-readiness"):
            return "ready after 412s\n"
        if name.endswith("-smoke-test"):
            return smoke_output()
        if name.endswith(f"-{group_view.CHECK}"):
            node = name.removesuffix(f"-{group_view.CHECK}")
            peers = {peer: True for peer in self.nodes if peer != node}
            return metrics_text(State(served=True, phase="serving"), vllm_up=True, head_healthy=True, peers_up=peers)
        if name.endswith("-benchmark"):
            return json.dumps(BENCHMARK_RESULT)
        if name.endswith("-accuracy"):
            return LM_EVAL_TABLE
        if name.endswith("-stage-weights"):
            return "already staged: vllm-ascend/DeepSeek-R1-W8A8\n"
        if name.endswith("-prometheus-data"):
            return "ready\n"
        raise KeyError(f"no fake output for command {name}")

    def _check(self, check: str, index: int, node: dict, script: str) -> str:
        npu_smi = "npu_smi/a3_healthy.txt" if self.npus == 16 else "npu_smi/a2_healthy.txt"
        # The v0.18.0 image's recorded facts (CANN 8.5.1) on a driver it supports.
        family = "a3" if self.npus == 16 else "a2"
        nic = node["nic"] if node["nic"] != "auto" else f"enp{index}s0"
        driver_paths = re.findall(r"'?(/[^' ;]+)'?", script.split(";", 1)[0])
        return {
            "npu-health": lambda: fixture(npu_smi),
            "npu-idle": lambda: fixture(npu_smi) + "=== npu-free\n",
            "dev-davinci": lambda: "\n".join(
                [f"davinci{i}" for i in range(self.npus)] + ["davinci_manager", "devmm_svm", "hisi_hdc", "null"]
            ),
            "driver-files": lambda: (
                "\n".join(f"present {p}" for p in driver_paths)
                + "\n=== version.info\n"
                + fixture("driver_files/version_new.txt")
            ),
            "npu-board": lambda: fixture(f"board/{family}_ok.txt"),
            "image-host": lambda: image_host_output(
                fixture(f"image/v0.18.0_{family}.json"),
                fixture("driver_files/version_new.txt"),
                fixture(f"board/{family}_chip0.txt"),
            ),
            "docker": lambda: "28.2.2\n",
            # A prefill or decode node: its KV ports free and no container of its own yet; Mooncake
            # in its image.
            "kv-ports": lambda: f"=== ss\n{fixture('kv_ports/ss_free.txt')}=== end\n=== {npu_holders.CHECK}\n",
            "mooncake": lambda: fixture("mooncake/ok.txt"),
            "npu-free": lambda: "",
            "weights-disk": lambda: fixture("disk/ok.txt"),
            "nic-ip": lambda: (
                f"1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"
                f"2: {nic}    inet {node['ip']}/24 brd 192.0.2.255 scope global {nic}\\       valid_lft forever\n"
            ),
            "npu-network": lambda: hccn_output(index, self.npus),
            "npu-tls": lambda: hccn_output(index, self.npus),
            "npu-ping": lambda: ping_output(script),
        }[check]()
