"""``vllm`` command line: ``vllm serve`` and ``vllm bench serve``."""

import argparse
import os
import signal
import socket
import sys
import threading
import time

from core import vllm_args
from vllm_sim import TABLE, __version__
from vllm_sim.log import Fatal, error, log

# vllm's defaults for the flags the simulator acts on (the table holds no defaults).
SERVE_DEFAULTS = {
    "host": "0.0.0.0",
    "port": 8000,
    "headless": False,
    "data_parallel_size": 1,
    "data_parallel_start_rank": 0,
    "data_parallel_rpc_port": 29550,
    "tensor_parallel_size": 1,
}


def add_serve_args(p: argparse.ArgumentParser) -> None:
    """The simulated vllm's serve flags, every one of them, from the table generated from its parser."""
    p.add_argument("model_tag", nargs="?", help="model path or name")
    vllm_args.add_arguments(p, TABLE)
    p.set_defaults(**SERVE_DEFAULTS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm", description="vLLM CLI (simulator: vllm-sim, for tests only)")
    parser.add_argument("-v", "--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="subcommand", required=True)
    serve = sub.add_parser(
        "serve",
        help="Start the (simulated) OpenAI-compatible server",
        usage="vllm serve [model_tag] [options]",
        add_help=False,
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


def serve(args) -> int:  # noqa: C901 (the API server's whole life cycle)
    from vllm_sim import checks, dp, engine_core, faults, headless
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
    cores = engine_core.CORES
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
        modes = faults.run_modes()
        hccl_timeout = faults.hccl_exec_timeout()
        dev_dir = os.environ.get("VLLM_SIM_DEV_DIR", "/dev")

        if args.headless:
            # Like vllm's headless process manager: start the engine cores, then only wait on them.
            cores.start(args, npus, dev_dir, body=lambda: headless.run_headless(args, ip, load_s))
            faults.install_triggers(cores.forward)
            try:
                core = cores.wait_any()
            finally:
                cores.stop()
            if core.exit_code:
                error(f"engine core proc {core.name} died (exit code {core.exit_code}); shutting down")
                return 1
            return 0

        # Fork the engine cores before any thread exists.
        cores.start(args, npus, dev_dir)
        listen = args.data_parallel_address or ip or "0.0.0.0"
        head = dp.DPHead(args, listen)
        head.start()
        loaded = threading.Event()
        ready = threading.Event()
        engine = Engine(
            args,
            health_fn=lambda: ready.is_set() and not head.lost,
            head=head,
            hccl_timeout=hccl_timeout,
            fresh_gauge="fresh-running-gauge" in modes,
        )

        def engine_died(core):
            if core.exit_code == 0:
                # Stopped by SIGTERM or SIGINT along with the rest of the process group.
                log(f"engine core proc {core.name} shut down; shutting down")
                engine_core.die(0)
            error(f"Engine core proc {core.name} died unexpectedly (exit code {core.exit_code}), shutting down client.")
            engine_core.die(1)

        cores.watch(engine_died)

        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        ApiServer.address_family = family
        try:
            httpd = ApiServer((args.host, args.port), make_handler(engine))
        except OSError as e:
            raise Fatal(f"cannot listen for HTTP on {args.host}:{args.port}: {e.strerror or e}") from e
        threading.Thread(target=httpd.serve_forever, name="http", daemon=True).start()
        log(f"HTTP API on http://{args.host}:{args.port} (/health 503 until ready)")
        if engine.api_keys:
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
    finally:
        cores.stop()


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line as vllm reads it: FlexibleArgumentParser's rewriting, then argparse."""
    if argv[:1] == ["serve"]:
        argv = ["serve", *vllm_args.rewrite(argv[1:])]
    args = build_parser().parse_args(argv)
    if args.subcommand == "serve":
        args.model = args.model_tag or args.model
        # vllm reads -1 (or auto) as "the model's own maximum".
        if args.max_model_len == -1:
            args.max_model_len = None
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.subcommand == "serve":
        return serve(args)
    if args.subcommand == "bench" and args.bench_type == "serve":
        from vllm_sim import bench

        return bench.main(args)
    build_parser().error("unsupported command")
    return 2
