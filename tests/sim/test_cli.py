"""`vllm serve` argument parsing and start-up checks (subprocesses, no Docker)."""

import argparse

import pytest
from mocked import stack_settings
from simhelpers import MODEL

from core.config import load_config
from core.plan import plan_cluster
from vllm_sim import checks
from vllm_sim.cli import build_parser, parse
from vllm_sim.log import Fatal


def test_unknown_flag_rejected_like_argparse(sim):
    rc, log = sim.run(["serve", MODEL, "--no-such-flag", "1"])
    assert rc == 2
    assert "error: unrecognized arguments: --no-such-flag" in log


def test_version_is_the_vllm_release_whose_flags_it_reads(sim):
    rc, log = sim.run(["--version"])
    assert (rc, log.strip()) == (0, "0.18.0")


def test_spellings_vllm_accepts_are_accepted():
    args = parse(
        [
            "serve",
            MODEL,
            "--max_num_seqs",
            "32",
            "-tp",
            "4",
            "-dp=2",
            "--no-async-scheduling",
            "--no-enable-expert",
            "--max-model-len",
            "16k",
            "--max-num-batched-tokens=16K",
            "--enforce-eager",
            "--compilation-config",
            '{"cudagraph_mode": "FULL_DECODE_ONLY"}',
            "-cc.cudagraph_capture_sizes",
            "[4, 8]",
            "-O3",
        ]
    )
    assert (args.max_num_seqs, args.tensor_parallel_size, args.data_parallel_size) == (32, 4, 2)
    assert (args.async_scheduling, args.enable_expert_parallel, args.enforce_eager) == (False, False, True)
    assert (args.max_model_len, args.max_num_batched_tokens) == (16000, 16384)
    # A dotted key replaces the whole JSON argument, as in vllm.
    assert args.compilation_config == {"cudagraph_capture_sizes": [4, 8]}
    assert args.optimization_level == "3"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--max-num", "8"], "ambiguous option: --max-num could match --max-num-batched-tokens"),
        (["--max-num-seqs 32"], "unrecognized arguments: --max-num-seqs 32"),
        (["--max-model-len", "1.5K"], "argument --max-model-len: invalid size-or-auto value: '1.5K'"),
        (["--enforce-eager=1"], "ignored explicit argument '1'"),
    ],
)
def test_what_vllm_refuses_is_refused(sim, args, message):
    rc, log = sim.run(["serve", MODEL, *args])
    assert rc == 2 and message in log


def test_every_rendered_command_line_parses():
    for stack in ("a2", "a3"):
        raw = stack_settings(stack)
        for serve in ({}, {"asyncScheduling": False, "enableExpertParallel": False, "trustRemoteCode": False}):
            for node in plan_cluster(load_config(raw | {"serve": serve}), stack=stack).nodes:
                args = parse(list(node.argv[1:]))
                assert args.model == raw.get("model", {}).get("name", "vllm-ascend/DeepSeek-R1-W8A8")


def test_all_deployment_flags_accepted():
    args = build_parser().parse_args(
        [
            "serve",
            MODEL,
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--headless",
            "--data-parallel-size",
            "4",
            "--data-parallel-size-local",
            "2",
            "--data-parallel-start-rank",
            "2",
            "--data-parallel-address",
            "10.0.0.1",
            "--data-parallel-rpc-port",
            "13389",
            "--tensor-parallel-size",
            "4",
            "--quantization",
            "ascend",
            "--seed",
            "1024",
            "--served-model-name",
            "ds",
            "--enable-expert-parallel",
            "--async-scheduling",
            "--max-num-seqs",
            "16",
            "--max-model-len",
            "32768",
            "--max-num-batched-tokens",
            "4096",
            "--trust-remote-code",
            "--gpu-memory-utilization",
            "0.9",
            "--speculative-config",
            '{"num_speculative_tokens": 1, "method": "deepseek_mtp"}',
            "--compilation-config",
            '{"cudagraph_mode": "FULL_DECODE_ONLY"}',
            "--no-enable-prefix-caching",
            "--api-key",
            "k",
        ]
    )
    assert args.data_parallel_size == 4 and args.data_parallel_start_rank == 2
    assert args.speculative_config["method"] == "deepseek_mtp"
    assert args.enable_prefix_caching is False
    assert args.gpu_memory_utilization == 0.9


def test_defaults():
    a = build_parser().parse_args(["serve", MODEL])
    assert (a.host, a.port, a.data_parallel_size, a.data_parallel_rpc_port) == ("0.0.0.0", 8000, 1, 29550)
    assert a.data_parallel_size_local is None and a.headless is False


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--speculative-config", "not json"),
        ("--compilation-config", "[1, 2]"),
    ],
)
def test_json_flags_must_be_objects(flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["serve", MODEL, flag, value])
    assert e.value.code == 2
    assert flag in capsys.readouterr().err


def test_device_count_mismatch_fails_clearly(sim):
    rc, log = sim.run(["serve", MODEL, "--tensor-parallel-size", "4", "--data-parallel-size", "2"], npus=2)
    assert rc != 0
    assert "vllm-sim: ERROR: found 2 NPU device(s)" in log
    assert "4 x 2 = 8" in log


def _ns(**kw):
    base = dict(
        data_parallel_size=1,
        data_parallel_size_local=1,
        data_parallel_start_rank=0,
        tensor_parallel_size=1,
        headless=False,
        data_parallel_address=None,
        max_model_len=None,
        max_num_seqs=None,
        gpu_memory_utilization=None,
    )
    base.update(kw)
    return argparse.Namespace(**base)


def test_missing_control_device(tmp_path):
    for n in ("davinci0", "davinci_manager", "devmm_svm"):
        (tmp_path / n).touch()
    env = {"VLLM_SIM_DEV_DIR": str(tmp_path), "VLLM_SIM_ALLOW_REGULAR_FILES": "1"}
    with pytest.raises(Fatal, match="hisi_hdc"):
        checks.check_devices(_ns(), env)


def test_regular_files_are_not_devices_by_default(tmp_path):
    for n in ("davinci0", "davinci_manager", "devmm_svm", "hisi_hdc"):
        (tmp_path / n).touch()
    with pytest.raises(Fatal, match="found 0 NPU"):
        checks.check_devices(_ns(), {"VLLM_SIM_DEV_DIR": str(tmp_path)})
    assert checks.check_devices(_ns(), {"VLLM_SIM_DEV_DIR": str(tmp_path), "VLLM_SIM_ALLOW_REGULAR_FILES": "1"}) == [
        "davinci0"
    ]


def _net_env(tmp_path, **kw):
    (tmp_path / "lo").mkdir(exist_ok=True)
    env = {
        "VLLM_SIM_NET_DIR": str(tmp_path),
        "HCCL_IF_IP": "127.0.0.1",
        "HCCL_SOCKET_IFNAME": "lo",
        "GLOO_SOCKET_IFNAME": "lo",
        "TP_SOCKET_IFNAME": "lo",
    }
    env.update(kw)
    return {k: v for k, v in env.items() if v is not None}


def test_network_ok(tmp_path):
    assert checks.check_network(_net_env(tmp_path)) == "127.0.0.1"


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"HCCL_IF_IP": None}, "HCCL_IF_IP is not set"),
        ({"HCCL_IF_IP": "203.0.113.77"}, "not an address of this host"),
        ({"GLOO_SOCKET_IFNAME": None}, "GLOO_SOCKET_IFNAME is not set"),
        ({"HCCL_SOCKET_IFNAME": "eth9"}, "interface 'eth9' not found"),
        ({"TP_SOCKET_IFNAME": "lo,enp1"}, "interface 'enp1' not found"),
    ],
)
def test_network_failures(tmp_path, kw, match):
    with pytest.raises(Fatal, match=match):
        checks.check_network(_net_env(tmp_path, **kw))


@pytest.mark.parametrize(
    "kw,match",
    [
        (
            dict(data_parallel_size=4, data_parallel_size_local=2, data_parallel_start_rank=3),
            "exceeds data-parallel-size",
        ),
        (
            dict(data_parallel_size=2, data_parallel_size_local=1, headless=True),
            "--headless requires --data-parallel-address",
        ),
    ],
)
def test_config_failures(kw, match):
    with pytest.raises(Fatal, match=match):
        checks.check_config(_ns(**kw))


def test_unbindable_hccl_ip_exits_nonzero(sim):
    rc, log = sim.run(["serve", MODEL], ip="203.0.113.77", npus=1)
    assert rc != 0 and "vllm-sim: ERROR: HCCL_IF_IP=203.0.113.77" in log
