"""The reference deployment's facts: hardware profiles, the tutorial's environment and JSON arguments.

The defaults are the values of vllm-ascend's DeepSeek-R1-W8A8 tutorial, so a stack file only
holds what differs per site (nodes, addresses, mirrors).
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECT = "deepseek-r1-ascend"

# Where vllm-ascend's images keep model caches (ModelScope, HuggingFace); model.weightsDir is
# mounted here, so results written below it persist on the host too.
WEIGHTS_MOUNT = "/root/.cache"

# The addresses that mean "every interface of the host".
UNSPECIFIED_HOSTS = ("0.0.0.0", "::")
# The mirror host through which Docker Hub images are pulled (as the tutorial pulls vllm-ascend).
DOCKER_HUB_MIRROR = "m.daocloud.io/docker.io"

# Accuracy runs (gsm8k, AISBench) need long contexts; the tutorial asks for at least this.
ACCURACY_MIN_MODEL_LEN = 35000


@dataclass(frozen=True)
class Profile:
    """One Atlas server model: what its NPUs are and which image build runs on it."""

    name: str
    npus: int
    hbm_gb_per_npu: int
    # vllm-ascend publishes `<version>-a3` images for A3; the plain tag is the A2 build.
    image_tag_suffix: str

    @property
    def hbm_gb(self) -> int:
        return self.npus * self.hbm_gb_per_npu


PROFILES = {
    "atlas-800-a3": Profile("atlas-800-a3", npus=16, hbm_gb_per_npu=64, image_tag_suffix="-a3"),
    "atlas-800-a2": Profile("atlas-800-a2", npus=8, hbm_gb_per_npu=64, image_tag_suffix=""),
}

# The environment of the tutorial's scripts, besides the per-node NIC/IP variables and
# VLLM_USE_MODELSCOPE. A single node and a multi-node DP group are tuned differently.
SINGLE_NODE_ENV = {
    "HCCL_OP_EXPANSION_MODE": "AIV",
    "VLLM_ASCEND_BALANCE_SCHEDULING": "1",
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
}
MULTI_NODE_ENV = {
    "OMP_PROC_BIND": "false",
    "OMP_NUM_THREADS": "1",
    "HCCL_BUFFSIZE": "200",
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
    "VLLM_ASCEND_BALANCE_SCHEDULING": "1",
    "HCCL_INTRA_PCIE_ENABLE": "1",
    "HCCL_INTRA_ROCE_ENABLE": "0",
}
# Set from each node's address and NIC; a typo here is what hangs a cluster, so never by hand.
NETWORK_ENV = ("HCCL_IF_IP", "GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME", "HCCL_SOCKET_IFNAME")
# Secret config keys and the container variable each one becomes (vllm reads VLLM_API_KEY
# like --api-key, which keeps the key out of the command line).
SECRET_ENV = {
    "apiKey": "VLLM_API_KEY",
    "modelscopeToken": "MODELSCOPE_API_TOKEN",
    "hfToken": "HF_TOKEN",
}
SECRET_KEYS = (*SECRET_ENV, "sshPrivateKey", "grafanaAdminPassword")
# The download tokens, which weights staging needs and the API key it does not.
TOKEN_ENV = (SECRET_ENV["modelscopeToken"], SECRET_ENV["hfToken"])
# Where every node's group supervisor serves its metrics (supervision.metricsPort).
SUPERVISION_METRICS_PORT = 9401
# `nodes[i].nic: auto` asks the preflight to find the interface that holds the node's IP.
AUTO_NIC = "auto"

# The tutorial's JSON arguments, byte for byte.
SEED_SPECULATIVE_CONFIG = '{"num_speculative_tokens":3,"method":"mtp"}'
SEED_COMPILATION_CONFIG = '{"cudagraph_capture_sizes":[4,16,32,48,64], "cudagraph_mode": "FULL_DECODE_ONLY"}'
MIN_SHM_BYTES = 1024**3
