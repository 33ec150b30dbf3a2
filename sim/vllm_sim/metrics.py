"""Prometheus text exposition with vllm's metric names.

Every series the deployment's dashboard and alert rules read is here, moving under load the way
vllm's do: KV cache use follows the tokens of running requests, a request that finds the cache
full counts a preemption, and MTP drafts are accepted at a fixed rate.
"""

import math
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
# vllm's inter-token latency buckets; queue time uses its request-latency buckets (E2E_BUCKETS).
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
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
    def __init__(self, model_name: str, kv_cache_tokens: int, spec_tokens: int = 0, spec_acceptance: float = 0.7):
        self.model_name = model_name
        self.lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = {}  # finished_reason -> count
        self.ttft = Histogram(TTFT_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.queue = Histogram(E2E_BUCKETS)
        self.kv_cache_tokens = kv_cache_tokens
        self.kv_used = 0
        # The scheduler's gauges as the last finished engine step published them (see `steps`).
        self.shown_running = 0
        self.shown_waiting = 0
        self.shown_kv_used = 0
        self.preemptions = 0
        # MTP: tokens drafted per decode step (0 without --speculative-config) and the share accepted.
        self.spec_tokens = spec_tokens
        self.spec_acceptance = spec_acceptance
        self.spec_drafts = 0
        self.spec_draft_tokens = 0
        self.spec_accepted = 0

    def admitted(self, prompt_tokens: int, queued: float) -> None:
        with self.lock:
            self.waiting -= 1
            self.running += 1
            self.queue.observe(queued)
            self._hold_kv(prompt_tokens)

    def left_queue(self) -> None:
        """A waiting request was aborted before it ran."""
        with self.lock:
            self.waiting -= 1

    def token(self, gap: float) -> None:
        """The client got a token `gap` seconds after the previous one."""
        with self.lock:
            self.itl.observe(gap)

    def generated(self, prompt_tokens: int = 0) -> None:
        """An engine step made one token of a request; with `prompt_tokens`, its first (the step
        that finished its prefill). Counted per step, as vllm's counters are."""
        with self.lock:
            self.generation_tokens += 1
            if prompt_tokens:
                self.prompt_tokens += prompt_tokens
            else:
                self._hold_kv(1)

    def publish(self, running: int | None = None) -> None:
        """An engine step finished: the scheduler's gauges as it leaves them (`running`: the
        step's batch, when it differs from the requests still known)."""
        with self.lock:
            self.shown_running = self.running if running is None else running
            self.shown_waiting = self.waiting
            self.shown_kv_used = self.kv_used

    def _hold_kv(self, tokens: int) -> None:
        if self.kv_used + tokens > self.kv_cache_tokens:
            # vllm would evict a running request and recompute it later.
            self.preemptions += 1
        self.kv_used += tokens

    def released(self, prompt_tokens: int, generated: int) -> None:
        """The request left the batch (finished or aborted): its KV cache is free again."""
        with self.lock:
            self.running -= 1
            self.kv_used -= prompt_tokens + max(0, generated - 1)

    def finished(self, prompt_tokens, gen_tokens, ttft, e2e, reason="length"):
        """The request's last token reached the client (its tokens were counted per step)."""
        with self.lock:
            self.success[reason] = self.success.get(reason, 0) + 1
            self.ttft.observe(ttft)
            self.e2e.observe(e2e)
            if self.spec_tokens and gen_tokens > 1:
                # Each step emits one token plus the accepted drafts.
                steps = math.ceil((gen_tokens - 1) / (1 + self.spec_tokens * self.spec_acceptance))
                self.spec_drafts += steps
                self.spec_draft_tokens += steps * self.spec_tokens
                self.spec_accepted += min(gen_tokens - 1, round(steps * self.spec_tokens * self.spec_acceptance))

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
                [f"vllm:num_requests_running{{{lbl}}} {_fmt(self.shown_running)}"],
            )
            metric(
                "vllm:num_requests_waiting",
                "gauge",
                "Number of requests waiting to be processed.",
                [f"vllm:num_requests_waiting{{{lbl}}} {_fmt(self.shown_waiting)}"],
            )
            metric(
                "vllm:kv_cache_usage_perc",
                "gauge",
                "KV-cache usage. 1 means 100 percent usage.",
                [f"vllm:kv_cache_usage_perc{{{lbl}}} {_fmt(min(1.0, self.shown_kv_used / self.kv_cache_tokens))}"],
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
            metric(
                "vllm:num_preemptions_total",
                "counter",
                "Cumulative number of preemption from the engine.",
                [f"vllm:num_preemptions_total{{{lbl}}} {_fmt(self.preemptions)}"],
            )
            if self.spec_tokens:
                for name, value, help_ in (
                    ("num_drafts", self.spec_drafts, "Number of spec decoding drafts."),
                    ("num_draft_tokens", self.spec_draft_tokens, "Number of draft tokens."),
                    ("num_accepted_tokens", self.spec_accepted, "Number of accepted tokens."),
                ):
                    full = f"vllm:spec_decode_{name}_total"
                    metric(full, "counter", help_, [f"{full}{{{lbl}}} {_fmt(value)}"])
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
            hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", self.itl)
            hist("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", self.queue)
        for name, kind, help_, value in process_metrics():
            metric(name, kind, help_, [f"{name} {_fmt(value)}"])
        return "\n".join(out) + "\n"


# Where /proc cannot tell: this module is imported as the process starts serving.
_IMPORTED_AT = time.time()


def _boot_time() -> float:
    with open("/proc/stat") as f:
        return float(next(int(line.split()[1]) for line in f if line.startswith("btime ")))


def _start_ticks() -> int:
    with open("/proc/self/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def _process_start_time() -> float:
    """As prometheus_client derives it: the start in clock ticks after boot, plus the boot time."""
    try:
        return _boot_time() + _start_ticks() / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


# Read once, as prometheus_client reads the boot time once: the kernel's btime is the wall clock
# minus the uptime, so it moves when the clock is stepped, and the start time must not.
_START_TIME = _process_start_time()


def process_start_time() -> float:
    return _START_TIME


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
            process_start_time(),
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
