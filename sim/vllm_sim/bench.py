"""``vllm bench serve`` stand-in: real HTTP load against an OpenAI-style server.

Requests stream (SSE) so TTFT and inter-token latencies are measured from the
client's own clock, as vllm's benchmark does. Threads + urllib, stdlib only.
Env: OPENAI_API_KEY (Bearer token), VLLM_SIM_BENCH_TIME_SCALE (divide the
Poisson inter-arrival times by this factor; default 1).
"""

import json
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime

from vllm_sim import textgen


def add_cli_args(p) -> None:
    p.add_argument("--backend", type=str, default="vllm")
    p.add_argument("--label", type=str, default=None)
    p.add_argument("--base-url", type=str, default=None)
    p.add_argument("--host", type=str, default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--endpoint", type=str, default="/v1/completions")
    p.add_argument("--model", type=str, default=None)
    p.add_argument("--served-model-name", type=str, default=None)
    p.add_argument("--tokenizer", type=str, default=None)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--dataset-name", type=str, default="random", choices=["random"])
    p.add_argument("--random-input-len", type=int, default=1024)
    p.add_argument("--random-output-len", type=int, default=128)
    p.add_argument("--random-range-ratio", type=float, default=0.0)
    p.add_argument("--num-prompts", type=int, default=1000)
    p.add_argument("--request-rate", type=float, default=float("inf"))
    p.add_argument("--burstiness", type=float, default=1.0)
    p.add_argument("--max-concurrency", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--ignore-eos", action="store_true")
    p.add_argument("--percentile-metrics", type=str, default=None)
    p.add_argument("--metric-percentiles", type=str, default="99")
    p.add_argument("--disable-tqdm", action="store_true")
    p.add_argument("--save-result", action="store_true")
    p.add_argument("--save-detailed", action="store_true")
    p.add_argument("--result-dir", type=str, default=None)
    p.add_argument("--result-filename", type=str, default=None)
    p.add_argument("--metadata", metavar="KEY=VALUE", nargs="*")


# ---------------------------------------------------------------- statistics
def percentile(values, p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return 0.0
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def mean(values) -> float:
    return sum(values) / len(values) if values else 0.0


def std(values) -> float:
    if not values:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


# ---------------------------------------------------------------- requests
class Output:
    def __init__(self, prompt_len: int):
        self.prompt_len = prompt_len
        self.success = False
        self.error = ""
        self.ttft = 0.0
        self.itl = []
        self.latency = 0.0
        self.output_tokens = 0
        self.generated_text = ""
        self.start_time = 0.0


def send_request(api_url, model, prompt, prompt_len, output_len, chat, extra, headers):  # noqa: C901 (one streaming request, as vllm's client reads it)
    out = Output(prompt_len)
    body = {"model": model, "max_tokens": output_len, "stream": True, "stream_options": {"include_usage": True}}
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
        body["max_completion_tokens"] = output_len
    else:
        body["prompt"] = prompt
    body.update(extra)
    req = urllib.request.Request(
        api_url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json", **headers}
    )
    st = time.perf_counter()
    out.start_time = time.time()
    last = st
    chunks = 0
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            for raw in resp:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue
                msg = json.loads(data)
                if msg.get("usage"):
                    out.output_tokens = msg["usage"].get("completion_tokens", chunks)
                for ch in msg.get("choices", []):
                    text = ch.get("text")
                    if text is None:
                        text = (ch.get("delta") or {}).get("content") or ""
                    if not text:
                        continue
                    now = time.perf_counter()
                    if chunks == 0:
                        out.ttft = now - st
                    else:
                        out.itl.append(now - last)
                    last = now
                    chunks += 1
                    out.generated_text += text
        out.latency = time.perf_counter() - st
        out.output_tokens = out.output_tokens or chunks
        out.success = chunks > 0
        if not out.success:
            out.error = "no tokens received"
    except urllib.error.HTTPError as e:
        out.error = f"HTTP {e.code}: {e.read().decode(errors='replace')[:300]}"
    except (OSError, ValueError) as e:
        out.error = str(e)
    return out


def first_model(base_url, headers):
    req = urllib.request.Request(f"{base_url}/v1/models", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        data = json.load(resp)
    m = data["data"][0]
    return m["id"], m.get("root") or m["id"]


# ---------------------------------------------------------------- main
def main(args) -> int:  # noqa: C901 (mirrors vllm bench serve's option handling)
    if args.max_concurrency is not None and args.max_concurrency <= 0:
        print("ERROR: --max-concurrency must be greater than 0")
        return 2
    base_url = args.base_url.rstrip("/") if args.base_url else f"http://{args.host}:{args.port}"
    api_url = f"{base_url}{args.endpoint}"
    headers = {}
    if os.environ.get("OPENAI_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
    print(args)
    if args.model is None:
        print("Model not specified, fetching first model from server...")
        try:
            model_name, model_id = first_model(base_url, headers)
        except (OSError, ValueError, KeyError, IndexError) as e:
            print(f"ERROR: failed to fetch models from {base_url}/v1/models: {e}")
            return 1
        print(f"First model name: {model_name}, first model id: {model_id}")
    else:
        model_id = args.model
        model_name = args.served_model_name
    request_model = model_name or model_id
    tokenizer_id = args.tokenizer or model_id

    rng = random.Random(args.seed)
    ratio = args.random_range_ratio
    requests = []
    for _ in range(args.num_prompts):
        lo_in = max(1, int(args.random_input_len * (1 - ratio)))
        hi_in = max(lo_in, int(args.random_input_len * (1 + ratio)))
        lo_out = max(1, int(args.random_output_len * (1 - ratio)))
        hi_out = max(lo_out, int(args.random_output_len * (1 + ratio)))
        n_in, n_out = rng.randint(lo_in, hi_in), rng.randint(lo_out, hi_out)
        requests.append((textgen.random_prompt(rng, n_in), n_in, n_out))

    chat = args.endpoint.rstrip("/").endswith("chat/completions")
    extra = {}
    if args.temperature is not None:
        extra["temperature"] = args.temperature
    if args.ignore_eos or args.dataset_name == "random":
        extra["ignore_eos"] = True
    time_scale = float(os.environ.get("VLLM_SIM_BENCH_TIME_SCALE", "1") or 1)

    print(f"Traffic request rate: {args.request_rate}")
    print(
        f"Burstiness factor: {args.burstiness} "
        f"({'Poisson process' if args.burstiness == 1.0 else 'Gamma distribution'})"
    )
    print(f"Maximum request concurrency: {args.max_concurrency}")

    outputs = [None] * len(requests)
    sem = threading.Semaphore(args.max_concurrency) if args.max_concurrency else None
    threads = []

    def run(i, prompt, n_in, n_out):
        if sem:
            sem.acquire()
        try:
            outputs[i] = send_request(api_url, request_model, prompt, n_in, n_out, chat, extra, headers)
        finally:
            if sem:
                sem.release()

    arrival_rng = random.Random(args.seed)
    bench_start = time.perf_counter()
    for i, (prompt, n_in, n_out) in enumerate(requests):
        t = threading.Thread(target=run, args=(i, prompt, n_in, n_out), daemon=True)
        t.start()
        threads.append(t)
        if not math.isinf(args.request_rate) and i < len(requests) - 1:
            theta = 1.0 / (args.request_rate * args.burstiness)
            interval = arrival_rng.gammavariate(args.burstiness, theta)
            time.sleep(interval / time_scale)
    for t in threads:
        t.join()
    duration = time.perf_counter() - bench_start

    ok = [o for o in outputs if o is not None and o.success]
    failed = len(outputs) - len(ok)
    total_in = sum(o.prompt_len for o in ok)
    total_out = sum(o.output_tokens for o in ok)
    ttfts = [o.ttft for o in ok]
    tpots = [(o.latency - o.ttft) / (o.output_tokens - 1) for o in ok if o.output_tokens > 1]
    itls = [x for o in ok for x in o.itl]
    e2els = [o.latency for o in ok]

    # peak output tokens/s and concurrency over 1 s buckets
    events = []
    for o in ok:
        t0 = o.start_time
        events.append((t0, 1))
        events.append((t0 + o.latency, -1))
    conc = peak_conc = 0
    for _, d in sorted(events):
        conc += d
        peak_conc = max(peak_conc, conc)
    per_sec = {}
    for o in ok:
        t = o.start_time + o.ttft
        for k in range(o.output_tokens):
            sec = int(t)
            per_sec[sec] = per_sec.get(sec, 0) + 1
            if k < len(o.itl):
                t += o.itl[k]
    peak_tok = max(per_sec.values()) if per_sec else 0

    dur = duration if duration > 0 else 1e-9
    result = {
        "duration": duration,
        "completed": len(ok),
        "failed": failed,
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": len(ok) / dur,
        "request_goodput": None,
        "output_throughput": total_out / dur,
        "total_token_throughput": (total_in + total_out) / dur,
        "input_lens": [o.prompt_len if o else 0 for o in outputs],
        "output_lens": [o.output_tokens if o else 0 for o in outputs],
        "ttfts": [o.ttft if o else 0.0 for o in outputs],
        "itls": [o.itl if o else [] for o in outputs],
        "start_times": [o.start_time if o else 0.0 for o in outputs],
        "generated_texts": [o.generated_text if o else "" for o in outputs],
        "errors": [o.error if o else "not sent" for o in outputs],
        "max_output_tokens_per_s": float(peak_tok),
        "max_concurrent_requests": peak_conc,
    }

    line = "{:<40} {:<10}"
    fline = "{:<40} {:<10.2f}"
    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="="))
    print(line.format("Successful requests:", len(ok)))
    print(line.format("Failed requests:", failed))
    if args.max_concurrency is not None:
        print(line.format("Maximum request concurrency:", args.max_concurrency))
    if not math.isinf(args.request_rate):
        print(fline.format("Request rate configured (RPS):", args.request_rate))
    print(fline.format("Benchmark duration (s):", duration))
    print(line.format("Total input tokens:", total_in))
    print(line.format("Total generated tokens:", total_out))
    print(fline.format("Request throughput (req/s):", result["request_throughput"]))
    print(fline.format("Output token throughput (tok/s):", result["output_throughput"]))
    print(fline.format("Peak output token throughput (tok/s):", peak_tok))
    print(fline.format("Peak concurrent requests:", peak_conc))
    print(fline.format("Total token throughput (tok/s):", result["total_token_throughput"]))

    selected = (args.percentile_metrics or "ttft,tpot,itl").split(",")
    pcts = [float(p) for p in args.metric_percentiles.split(",")]
    series = {
        "ttft": ("TTFT", "Time to First Token", ttfts),
        "tpot": ("TPOT", "Time per Output Token (excl. 1st token)", tpots),
        "itl": ("ITL", "Inter-token Latency", itls),
        "e2el": ("E2EL", "End-to-end Latency", e2els),
    }
    for key in ("ttft", "tpot", "itl", "e2el"):
        if key not in selected:
            continue
        name, header, vals = series[key]
        ms = [v * 1000 for v in vals]
        print("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        print(fline.format(f"Mean {name} (ms):", mean(ms)))
        print(fline.format(f"Median {name} (ms):", percentile(ms, 50)))
        result[f"mean_{key}_ms"] = mean(ms)
        result[f"median_{key}_ms"] = percentile(ms, 50)
        result[f"std_{key}_ms"] = std(ms)
        for p in pcts:
            word = str(int(p)) if int(p) == p else str(p)
            v = percentile(ms, p)
            print(fline.format(f"P{word} {name} (ms):", v))
            result[f"p{word}_{key}_ms"] = v
    print("=" * 50)

    if failed:
        errs = sorted({o.error for o in outputs if o is not None and not o.success})
        print(f"WARNING: {failed} request(s) failed: {'; '.join(errs)[:500]}")

    if args.save_result:
        current_dt = datetime.now().strftime("%Y%m%d-%H%M%S")
        result_json = {
            "date": current_dt,
            "endpoint_type": args.backend,
            "backend": args.backend,
            "label": args.label,
            "model_id": model_id,
            "tokenizer_id": tokenizer_id,
            "num_prompts": args.num_prompts,
        }
        for item in args.metadata or []:
            if "=" not in item:
                print("ERROR: Invalid metadata format. Please use KEY=VALUE format.")
                return 2
            k, v = item.split("=", 1)
            result_json[k.strip()] = v.strip()
        result_json["request_rate"] = args.request_rate if args.request_rate < float("inf") else "inf"
        result_json["burstiness"] = args.burstiness
        result_json["max_concurrency"] = args.max_concurrency
        result_json.update(result)
        if not args.save_detailed:
            for field in ("input_lens", "output_lens", "start_times", "ttfts", "itls", "generated_texts", "errors"):
                result_json.pop(field, None)
        conc = f"-concurrency{args.max_concurrency}" if args.max_concurrency is not None else ""
        label = args.label or args.backend
        file_name = f"{label}-{args.request_rate}qps{conc}-{model_id.split('/')[-1]}-{current_dt}.json"
        if args.result_filename:
            file_name = args.result_filename
        if args.result_dir:
            os.makedirs(args.result_dir, exist_ok=True)
            file_name = os.path.join(args.result_dir, file_name)
        with open(file_name, "w", encoding="utf-8") as f:
            json.dump(result_json, f)
        print(f"Saved benchmark result to {file_name}")
    return 0 if ok else 1
