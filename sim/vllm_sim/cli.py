"""``vllm`` command line: ``vllm serve`` and ``vllm bench serve``."""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

from vllm_sim import __version__
from vllm_sim.log import Fatal, error, log


def _json_object(flag):
    def parse(value: str):
        try:
            obj = json.loads(value)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(f"{flag} is not valid JSON: {e}") from e
        if not isinstance(obj, dict):
            raise argparse.ArgumentTypeError(f"{flag} must be a JSON object, got {value!r}")
        return obj

    return parse


def add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model path or name")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--headless", action="store_true")
    p.add_argument("--data-parallel-size", type=int, default=1)
    p.add_argument("--data-parallel-size-local", type=int, default=None)
    p.add_argument("--data-parallel-start-rank", type=int, default=0)
    p.add_argument("--data-parallel-address", type=str, default=None)
    p.add_argument("--data-parallel-rpc-port", type=int, default=29550)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--quantization", type=str, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--served-model-name", type=str, default=None)
    p.add_argument("--enable-expert-parallel", action="store_true")
    p.add_argument("--async-scheduling", action="store_true")
    p.add_argument("--max-num-seqs", type=int, default=None)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--max-num-batched-tokens", type=int, default=None)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--gpu-memory-utilization", type=float, default=None)
    p.add_argument("--speculative-config", type=_json_object("--speculative-config"), default=None)
    p.add_argument("--compilation-config", type=_json_object("--compilation-config"), default=None)
    p.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--api-key", type=str, default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm", description="vLLM CLI (simulator: vllm-sim, for tests only)")
    parser.add_argument("-v", "--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="subcommand", required=True)
    serve = sub.add_parser(
        "serve", help="Start the (simulated) OpenAI-compatible server", usage="vllm serve [model_tag] [options]"
    )
    add_serve_args(serve)
    bench = sub.add_parser("bench", help="vLLM bench subcommand")
    bench_sub = bench.add_subparsers(dest="bench_type", required=True)
    from vllm_sim import bench as bench_mod

    bench_serve = bench_sub.add_parser(
        "serve", help="Benchmark the online serving throughput", usage="vllm bench serve [options]"
    )
    bench_mod.add_cli_args(bench_serve)
    return parser


def _install_signal_handlers():
    def handler(signum, frame):
        log(f"received signal {signum}; shutting down")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve(args) -> int:
    from vllm_sim import checks, dp
    from vllm_sim.server import ApiServer, Engine, make_handler

    if args.data_parallel_size_local is None:
        args.data_parallel_size_local = args.data_parallel_size
    _install_signal_handlers()
    role = "headless" if args.headless else "head"
    log(
        f"vllm {__version__} serve {args.model} ({role}; dp={args.data_parallel_size} "
        f"local={args.data_parallel_size_local} start_rank={args.data_parallel_start_rank} "
        f"tp={args.tensor_parallel_size})"
    )
    try:
        checks.check_config(args)
        npus = checks.check_devices(args)
        log(f"found {len(npus)} NPU device(s): {', '.join(npus)}")
        ip = checks.check_network()
        log(
            f"HCCL_IF_IP={ip} HCCL_SOCKET_IFNAME={os.environ['HCCL_SOCKET_IFNAME']} "
            f"GLOO_SOCKET_IFNAME={os.environ['GLOO_SOCKET_IFNAME']} "
            f"TP_SOCKET_IFNAME={os.environ['TP_SOCKET_IFNAME']}"
        )
        load_s = float(os.environ.get("VLLM_SIM_LOAD_SECONDS", "2"))

        if args.headless:
            stop = threading.Event()
            log(f"loading model weights (simulated, {load_s:g}s)")
            time.sleep(load_s)
            try:
                return dp.run_headless(args, ip, stop)
            finally:
                stop.set()

        listen = args.data_parallel_address or ip or "0.0.0.0"
        head = dp.DPHead(args, listen)
        head.start()
        loaded = threading.Event()
        ready = threading.Event()
        engine = Engine(args, health_fn=lambda: ready.is_set() and not head.lost)

        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        ApiServer.address_family = family
        try:
            httpd = ApiServer((args.host, args.port), make_handler(engine))
        except OSError as e:
            raise Fatal(f"cannot listen for HTTP on {args.host}:{args.port}: {e.strerror or e}") from e
        threading.Thread(target=httpd.serve_forever, name="http", daemon=True).start()
        log(f"HTTP API on http://{args.host}:{args.port} (/health 503 until ready)")
        if engine.api_key:
            log("API key required for /v1/* (Authorization: Bearer ...)")

        def become_ready():
            log(f"loading model weights (simulated, {load_s:g}s)")
            time.sleep(load_s)
            loaded.set()
            head.all_joined.wait()
            if head.lost:
                error("a data-parallel rank was lost before the engine became ready")
                return
            ready.set()
            log(f"all {args.data_parallel_size} data-parallel ranks joined; ready")

        threading.Thread(target=become_ready, name="startup", daemon=True).start()
        try:
            while True:
                time.sleep(3600)
        finally:
            head.stop()
            httpd.shutdown()
    except Fatal as e:
        error(str(e))
        return e.code


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.subcommand == "serve":
        return serve(args)
    if args.subcommand == "bench" and args.bench_type == "serve":
        from vllm_sim import bench

        return bench.main(args)
    parser.error("unsupported command")
    return 2
