"""Prometheus text exposition with vllm's metric names."""

import os
import threading
import time

TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)


class Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1
        self.sum += v
        self.count += 1


def _fmt(v) -> str:
    return repr(float(v))


class Metrics:
    def __init__(self, model_name: str):
        self.model_name = model_name
        self.lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = {}  # finished_reason -> count
        self.ttft = Histogram(TTFT_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)

    def finished(self, prompt_tokens, gen_tokens, ttft, e2e, reason="length"):
        with self.lock:
            self.prompt_tokens += prompt_tokens
            self.generation_tokens += gen_tokens
            self.success[reason] = self.success.get(reason, 0) + 1
            self.ttft.observe(ttft)
            self.e2e.observe(e2e)

    def render(self) -> str:
        lbl = f'model_name="{self.model_name}"'
        out = []

        def metric(name, kind, help_, samples):
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)

        def hist(name, help_, h):
            samples = []
            for b, c in zip(h.buckets, h.counts, strict=True):
                samples.append(f'{name}_bucket{{le="{b}",{lbl}}} {_fmt(c)}')
            samples.append(f'{name}_bucket{{le="+Inf",{lbl}}} {_fmt(h.count)}')
            samples.append(f"{name}_count{{{lbl}}} {_fmt(h.count)}")
            samples.append(f"{name}_sum{{{lbl}}} {_fmt(h.sum)}")
            metric(name, "histogram", help_, samples)

        with self.lock:
            metric(
                "vllm:num_requests_running",
                "gauge",
                "Number of requests in model execution batches.",
                [f"vllm:num_requests_running{{{lbl}}} {_fmt(self.running)}"],
            )
            metric(
                "vllm:num_requests_waiting",
                "gauge",
                "Number of requests waiting to be processed.",
                [f"vllm:num_requests_waiting{{{lbl}}} {_fmt(self.waiting)}"],
            )
            metric(
                "vllm:kv_cache_usage_perc",
                "gauge",
                "KV-cache usage. 1 means 100 percent usage.",
                [f"vllm:kv_cache_usage_perc{{{lbl}}} {_fmt(min(1.0, self.running / 256))}"],
            )
            metric(
                "vllm:prompt_tokens_total",
                "counter",
                "Number of prefill tokens processed.",
                [f"vllm:prompt_tokens_total{{{lbl}}} {_fmt(self.prompt_tokens)}"],
            )
            metric(
                "vllm:generation_tokens_total",
                "counter",
                "Number of generation tokens processed.",
                [f"vllm:generation_tokens_total{{{lbl}}} {_fmt(self.generation_tokens)}"],
            )
            reasons = dict(self.success)
            for r in ("stop", "length", "abort"):
                reasons.setdefault(r, 0)
            metric(
                "vllm:request_success_total",
                "counter",
                "Count of successfully processed requests.",
                [
                    f'vllm:request_success_total{{finished_reason="{r}",{lbl}}} {_fmt(c)}'
                    for r, c in sorted(reasons.items())
                ],
            )
            hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", self.ttft)
            hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", self.e2e)
        for name, kind, help_, value in process_metrics():
            metric(name, kind, help_, [f"{name} {_fmt(value)}"])
        return "\n".join(out) + "\n"


# Where /proc cannot tell: this module is imported as the process starts serving.
_IMPORTED_AT = time.time()


def _process_start_time() -> float:
    """As prometheus_client derives it: the start in clock ticks after boot, plus the boot time."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


def process_metrics() -> list[tuple[str, str, str, float]]:
    """The process series every vllm API server exposes (prometheus_client's process collector)."""
    times = os.times()
    try:
        with open("/proc/self/statm") as f:
            virtual_pages, resident_pages = (int(v) for v in f.read().split()[:2])
        open_fds = len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError):
        virtual_pages = resident_pages = open_fds = 0
    page = os.sysconf("SC_PAGE_SIZE")
    return [
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            _process_start_time(),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            times.user + times.system,
        ),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", resident_pages * page),
        ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", virtual_pages * page),
        ("process_open_fds", "gauge", "Number of open file descriptors.", open_fds),
    ]
