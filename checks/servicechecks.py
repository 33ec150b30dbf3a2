"""What proves the service works, as shell commands, and pure readers of what they print.

Readiness, the smoke request, the benchmark, the accuracy run and weights staging all run on a
node (over SSH, or locally for a local engine). Commands read secrets from their environment
(`VLLM_API_KEY`, tokens), never from their own text, and hand them on by name (`docker exec -e
NAME`) or on a standard input (curl's `-H @-`), never as an argument: command lines and logs
stay clean, and no other user of the node reads a secret in `ps`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from dataclasses import dataclass

from core.config import TOKEN_ENV, WEIGHTS_MOUNT, Accuracy, Benchmark

# `api <curl arguments>`: curl with the API key's header when the command runs with VLLM_API_KEY
# set. The header reaches curl on its standard input (`-H @-`, curl 7.55+) from a here-document,
# which the shell expands itself: the key is on no process's command line (`ps` shows every one).
API_FUNCTION = "\n".join(
    [
        "api() {",
        '  if [ -n "${VLLM_API_KEY:-}" ]; then',
        '    curl -H @- "$@" <<EOF',
        "Authorization: Bearer ${VLLM_API_KEY}",
        "EOF",
        "  else",
        '    curl "$@"',
        "  fi",
        "}",
    ]
)
# vllm's bench and lm_eval's API models read the key as OPENAI_API_KEY; `docker exec -e` passes it on.
_OPENAI_KEY = 'OPENAI_API_KEY="${VLLM_API_KEY:-}"; export OPENAI_API_KEY'


def secrets_prelude(names: list[str]) -> str:
    """Shell that reads one secret per line of standard input into these variables, in order."""
    return "".join(f"IFS= read -r {name} || true; export {name}; " for name in names)


class ServiceCheckFailed(Exception):
    """A verification step ran but its answer shows the service is not right."""


def readiness_command(
    base_url: str, served_name: str, timeout_s: int, interval_s: int, container: str, stack: str
) -> str:
    """Poll until /health is 200 and /v1/models lists the served model; on timeout, show the logs
    and the command that collects every node's state.

    A line a minute reports the wait in the console and keeps the SSH session from sitting
    silent for the hour the weights can take to load (idle sessions get cut by NAT and firewalls).
    """
    health, models = shlex.quote(f"{base_url}/health"), shlex.quote(f"{base_url}/v1/models")
    listed = shlex.quote(f'"id": *"{re.escape(served_name)}"')
    waiting = shlex.quote(f"waiting for {base_url} to serve {served_name}:")
    return "\n".join(
        [
            API_FUNCTION,
            "set -- -fsS --max-time 10",
            "start=$(date +%s)",
            "report=60",
            "while :; do",
            f'  if api "$@" -o /dev/null {health} 2>/dev/null && api "$@" {models} 2>/dev/null | grep -q {listed}; then',
            '    echo "ready after $(( $(date +%s) - start ))s"; exit 0',
            "  fi",
            "  waited=$(( $(date +%s) - start ))",
            f"  if [ $waited -ge {int(timeout_s)} ]; then",
            f"    echo {shlex.quote(f'not ready after {timeout_s}s: {base_url}/health is not 200 or /v1/models does not list {served_name}; last log lines of {container}:')} >&2",
            f"    docker logs --tail 40 {shlex.quote(container)} >&2 2>&1",
            f"    echo {shlex.quote(f'every node (containers, supervisors, npu-smi, hccn_tool, driver): python -m ops.diagnose {stack}')} >&2",
            "    exit 1",
            "  fi",
            "  if [ $waited -ge $report ]; then",
            f'    echo {waiting} "${{waited}}s of {int(timeout_s)}s"; report=$(( report + 60 ))',
            "  fi",
            f"  sleep {int(interval_s)}",
            "done",
        ]
    )


def ready_after_seconds(output: str) -> int:
    match = re.search(r"ready after (\d+)s", output or "")
    if not match:
        raise ServiceCheckFailed(f"readiness: unexpected output {output!r}")
    return int(match.group(1))


@dataclass(frozen=True)
class SmokeResult:
    text: str
    latency_ms: float
    completion_tokens: int


def smoke_command(base_url: str, request: dict, retry_seconds: int = 0) -> str:
    """The request, once; with `retry_seconds`, again while the answer is 502 or 503 (a router or
    proxy that has not admitted a group yet), until that many seconds passed."""
    body = shlex.quote(json.dumps(request))
    send = f"api \"$@\" -w '\\n%{{http_code}} %{{time_total}}\\n' -d {body} {shlex.quote(base_url + '/v1/completions')}"
    if not retry_seconds:
        return "\n".join([API_FUNCTION, "set -- -sS --max-time 600 -H 'Content-Type: application/json'", send])
    return "\n".join(
        [
            API_FUNCTION,
            "set -- -sS --max-time 600 -H 'Content-Type: application/json'",
            f"deadline=$(( $(date +%s) + {int(retry_seconds)} ))",
            "while :; do",
            f"  out=$({send})",
            '  case "$(printf \'%s\\n\' "$out" | tail -n 1)" in',
            '    "502 "* | "503 "*) if [ "$(date +%s)" -lt "$deadline" ]; then sleep 2; continue; fi ;;',
            "  esac",
            "  printf '%s\\n' \"$out\"; break",
            "done",
        ]
    )


_LOST_KV = (
    "a model decoding without its KV cache answers like this (with prefill-decode: a lost KV transfer, "
    "`Mooncake transfer failed` in the decoder's log)"
)
# Words: runs of letters and digits, and each CJK character on its own (Chinese is written without
# spaces). Punctuation is left out: Markdown's rules and tables repeat it in real answers.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
_WORD = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
# A word this many times in a row is a loop.
DEGENERATE_RUN = 6
# From this many words on, no one word or pair of words covers more than half of an answer;
# shorter texts are too short to tell.
DEGENERATE_MIN_WORDS = 8


def degenerate(text: str) -> str | None:
    """Why `text` is a loop rather than an answer, or None: no word at all (only punctuation), one
    word `DEGENERATE_RUN` or more times in a row, or, in a text of `DEGENERATE_MIN_WORDS` words or
    more, one word or 2-gram covering more than half of them. A decoder without its KV cache (a lost
    KV transfer) repeats itself exactly so."""
    words = _WORD.findall(text.lower())
    if not words:
        return "not one word in it"
    run = 1
    for i in range(1, len(words)):
        run = run + 1 if words[i] == words[i - 1] else 1
        if run == DEGENERATE_RUN:
            return f"the word {words[i]!r} repeated {DEGENERATE_RUN} or more times in a row"
    if len(words) < DEGENERATE_MIN_WORDS:
        return None
    for n in (1, 2):
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        gram, count = grams.most_common(1)[0]
        # Overlapping pairs of one repeated word count twice; those are caught as single words.
        covered = min(count * n, len(words))
        if covered * 2 > len(words):
            return f"{' '.join(gram)!r} makes up {covered} of its {len(words)} words"
    return None


def parse_smoke(output: str) -> SmokeResult:
    """The completion text and wall-clock latency, or ServiceCheckFailed saying what came back."""
    lines = (output or "").rstrip("\n").split("\n")
    status = re.fullmatch(r"(\d{3}) ([\d.]+)", lines[-1].strip()) if lines else None
    if not status:
        raise ServiceCheckFailed(f"smoke test: no HTTP status in curl output {output[:200]!r}")
    code, seconds = int(status.group(1)), float(status.group(2))
    body = "\n".join(lines[:-1])
    if code != 200:
        raise ServiceCheckFailed(f"smoke test: /v1/completions answered HTTP {code}: {body[:300]}")
    try:
        answer = json.loads(body)
        text = answer["choices"][0]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ServiceCheckFailed(f"smoke test: not an OpenAI completion: {body[:300]!r}") from None
    if not isinstance(text, str) or not text.strip():
        raise ServiceCheckFailed(
            f"smoke test: the model returned an empty completion ({text!r}): it answers nothing to the prompt; "
            f"{_LOST_KV}"
        )
    why = degenerate(text)
    if why:
        raise ServiceCheckFailed(
            f"smoke test: the model returned degenerate text {text[:80]!r}: {why}, which no answer does; {_LOST_KV}"
        )
    tokens = int((answer.get("usage") or {}).get("completion_tokens") or 0)
    return SmokeResult(text=text, latency_ms=round(seconds * 1000, 1), completion_tokens=tokens)


def benchmark_result_file(settings: Benchmark, stack: str) -> str:
    return f"{settings.result_dir.rstrip('/')}/{stack}-{settings.dataset_name}-{settings.num_prompts}p-{settings.request_rate:g}qps.json"


def benchmark_command(
    container: str, model: str, served_name: str, base_url: str, settings: Benchmark, stack: str
) -> str:
    """`vllm bench serve` inside the head container (it has vllm), then print the result file."""
    result = benchmark_result_file(settings, stack)
    directory, filename = result.rsplit("/", 1)
    bench = [
        "vllm", "bench", "serve",
        "--backend", "vllm",
        "--base-url", base_url,
        "--model", model,
        "--served-model-name", served_name,
        "--dataset-name", settings.dataset_name,
        "--random-input-len", str(settings.random_input_len),
        "--num-prompts", str(settings.num_prompts),
        "--request-rate", f"{settings.request_rate:g}",
        "--save-result", "--result-dir", directory, "--result-filename", filename,
    ]  # fmt: skip
    exec_ = ["docker", "exec", "-e", "OPENAI_API_KEY", container]
    return "\n".join(
        [
            _OPENAI_KEY,
            f"{shlex.join(exec_ + bench)} >&2",
            shlex.join(["docker", "exec", container, "cat", result]),
        ]
    )


# The benchmark figures exported as stack outputs: vllm's result-file keys.
BENCHMARK_KEYS = (
    "completed",
    "request_throughput",
    "output_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "p99_tpot_ms",
)


def parse_benchmark(output: str) -> dict:
    try:
        result = json.loads(output)
    except ValueError:
        raise ServiceCheckFailed(f"benchmark: the result file is not JSON: {output[:200]!r}") from None
    missing = [k for k in BENCHMARK_KEYS if k not in result]
    if missing:
        raise ServiceCheckFailed(f"benchmark: the result file lacks {', '.join(missing)}")
    if not result["completed"]:
        raise ServiceCheckFailed("benchmark: no request completed")
    return {k: result[k] for k in BENCHMARK_KEYS}


def accuracy_command(container: str, served_name: str, base_url: str, settings: Accuracy) -> str:
    model_args = (
        f"model={served_name},base_url={base_url}/v1/completions,tokenizer={settings.tokenizer},"
        "tokenized_requests=False,trust_remote_code=True"
    )
    if settings.model_args:
        model_args += f",{settings.model_args}"
    argv = [
        "docker", "exec", "-e", "OPENAI_API_KEY", container,
        "lm_eval", "--model", "local-completions", "--model_args", model_args,
        "--tasks", settings.tasks, "--output_path", settings.output_dir,
    ]  # fmt: skip
    if settings.limit:
        argv += ["--limit", str(settings.limit)]
    return f"{_OPENAI_KEY}\n{shlex.join(argv)}"


def parse_accuracy(output: str) -> dict[str, dict[str, float]]:
    """lm_eval's results table as {task: {filter: value}} (exact_match or the first metric)."""
    scores: dict[str, dict[str, float]] = {}
    task = None
    for line in (output or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or cells[0] in ("Tasks", "Groups") or set(cells[0]) <= {"-", ":"} and cells[0]:
            continue
        task = cells[0] or task
        try:
            value = float(cells[6])
        except ValueError:
            continue
        if task:
            scores.setdefault(task, {})[cells[2] or cells[4]] = value
    if not scores:
        raise ServiceCheckFailed(f"accuracy: no results table in lm_eval's output: {(output or '')[-300:]!r}")
    return scores


def staging_command(image: str, weights_dir: str, model: str, use_modelscope: bool, mode: str = "download") -> str:
    """Download the weights into the host's weights directory with the image's own tools, unless
    its marker says they are there; `mode="verify"` only looks for the marker (a node sharing the
    directory another node downloads into)."""
    marker = ".staged-" + re.sub(r"[^A-Za-z0-9_.-]", "_", model)
    done = shlex.quote(f"staged: {model}")
    if mode == "verify":
        on_host = shlex.quote(f"{weights_dir.rstrip('/')}/{marker}")
        missing = shlex.quote(f"not staged: no {marker} in the shared weights directory {weights_dir}")
        return f"if [ -f {on_host} ]; then echo already {done}; else echo {missing}; fi"
    download = (
        f"modelscope download --model {shlex.quote(model)}"
        if use_modelscope
        else f"huggingface-cli download {shlex.quote(model)}"
    )
    inside = f"{WEIGHTS_MOUNT}/{marker}"
    inner = f"if [ -f {inside} ]; then echo already {done}; else {download} && touch {inside} && echo {done}; fi"
    tokens = [arg for name in TOKEN_ENV for arg in ("-e", name)]
    return shlex.join(
        ["docker", "run", "--rm", *tokens, "-v", f"{weights_dir}:{WEIGHTS_MOUNT}", image, "sh", "-c", inner]
    )
