"""The vllm-ascend DeepSeek-R1-W8A8 tutorial's deployment, transcribed: the ground truth our
defaults must reproduce. `$local_ip`, `$nic_name` and `$node0_ip` are filled in per test."""

import shlex

DOCKER_DEVICES_A2 = [f"/dev/davinci{i}" for i in range(8)] + ["/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"]
DOCKER_DEVICES_A3 = [f"/dev/davinci{i}" for i in range(16)] + [
    "/dev/davinci_manager",
    "/dev/devmm_svm",
    "/dev/hisi_hdc",
]
DOCKER_MOUNTS = [
    "/usr/local/dcmi",
    "/etc/hccn.conf",
    "/usr/bin/hccn_tool",
    "/usr/local/Ascend/driver/tools/hccn_tool",
    "/usr/local/bin/npu-smi",
    "/usr/local/Ascend/driver/lib64",
    "/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info",
]
IMAGE = "m.daocloud.io/quay.io/ascend/vllm-ascend:v0.18.0"

SINGLE_NODE_ENV = {
    "HCCL_OP_EXPANSION_MODE": "AIV",
    "HCCL_IF_IP": "$local_ip",
    "GLOO_SOCKET_IFNAME": "$nic_name",
    "TP_SOCKET_IFNAME": "$nic_name",
    "HCCL_SOCKET_IFNAME": "$nic_name",
    "VLLM_ASCEND_BALANCE_SCHEDULING": "1",
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
    "VLLM_USE_MODELSCOPE": "True",
}
MULTI_NODE_ENV = {
    "HCCL_IF_IP": "$local_ip",
    "GLOO_SOCKET_IFNAME": "$nic_name",
    "TP_SOCKET_IFNAME": "$nic_name",
    "HCCL_SOCKET_IFNAME": "$nic_name",
    "OMP_PROC_BIND": "false",
    "OMP_NUM_THREADS": "1",
    "HCCL_BUFFSIZE": "200",
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
    "VLLM_ASCEND_BALANCE_SCHEDULING": "1",
    "HCCL_INTRA_PCIE_ENABLE": "1",
    "HCCL_INTRA_ROCE_ENABLE": "0",
    "VLLM_USE_MODELSCOPE": "True",
}

_MODEL_FLAGS = """\
  --tensor-parallel-size 4 \\
  --quantization ascend \\
  --seed 1024 \\
  --served-model-name deepseek_r1 \\
  --enable-expert-parallel \\
  --async-scheduling \\
  --max-num-seqs 16 \\
  --max-model-len 16384 \\
  --max-num-batched-tokens 4096 \\
  --trust-remote-code \\
  --gpu-memory-utilization 0.92 \\
  --speculative-config '{"num_speculative_tokens":3,"method":"mtp"}' \\
  --compilation-config '{"cudagraph_capture_sizes":[4,16,32,48,64], "cudagraph_mode": "FULL_DECODE_ONLY"}'
"""

SINGLE_NODE_SERVE = (
    """\
vllm serve vllm-ascend/DeepSeek-R1-W8A8 \\
  --host 0.0.0.0 \\
  --port 8000 \\
  --data-parallel-size 4 \\
"""
    + _MODEL_FLAGS
)

NODE0_SERVE = (
    """\
vllm serve vllm-ascend/DeepSeek-R1-W8A8 \\
  --host 0.0.0.0 \\
  --port 8000 \\
  --data-parallel-size 4 \\
  --data-parallel-size-local 2 \\
  --data-parallel-address $local_ip \\
  --data-parallel-rpc-port 13389 \\
"""
    + _MODEL_FLAGS
)

NODE1_SERVE = (
    """\
vllm serve vllm-ascend/DeepSeek-R1-W8A8 \\
  --host 0.0.0.0 \\
  --port 8000 \\
  --headless \\
  --data-parallel-size 4 \\
  --data-parallel-size-local 2 \\
  --data-parallel-start-rank 2 \\
  --data-parallel-address $node0_ip \\
  --data-parallel-rpc-port 13389 \\
"""
    + _MODEL_FLAGS
)


def fill(template, **values):
    """The seed's shell variables replaced by a node's values; a script becomes its argv."""
    if isinstance(template, dict):
        return {k: fill(v, **values) for k, v in template.items()}
    for name, value in values.items():
        template = template.replace(f"${name}", value)
    return shlex.split(template.replace("\\\n", " ")) if "\n" in template else template


def behind_the_front_door(argv, head_ip):
    """The one change a security default makes to the tutorial's command (docs/security.md): vllm
    listens on the head's cluster address, behind the front door, instead of on 0.0.0.0."""
    at = argv.index("--host")
    assert argv[at + 1] == "0.0.0.0"
    return [*argv[: at + 1], head_ip, *argv[at + 2 :]]
