"""Readers of what the verification commands print: healthy answers, failures and garbage."""

import http.server
import json
import shutil
import subprocess
import threading

import pytest
from fakehosts import BENCHMARK_RESULT, LM_EVAL_TABLE, smoke_output

from checks import servicechecks as sc
from core.config import Accuracy, Benchmark
from vllm_sim import textgen


def test_readiness_reports_the_wait():
    assert sc.ready_after_seconds("ready after 812s\n") == 812
    with pytest.raises(sc.ServiceCheckFailed, match="readiness: unexpected output 'curl: not found'"):
        sc.ready_after_seconds("curl: not found")


def test_smoke_reads_text_latency_and_tokens():
    result = sc.parse_smoke(smoke_output(" is bright"))
    assert (result.text, result.latency_ms, result.completion_tokens) == (" is bright", 1532.0, 50)


@pytest.mark.parametrize(
    "output, message",
    [
        ("", "smoke test: no HTTP status in curl output ''"),
        ("curl: (7) Failed to connect to 127.0.0.1 port 8000", "smoke test: no HTTP status in curl output"),
        (
            '{"error":"Unauthorized"}\n401 0.002\n',
            'smoke test: /v1/completions answered HTTP 401: {"error":"Unauthorized"}',
        ),
        ("<html>proxy error</html>\n200 0.1\n", "smoke test: not an OpenAI completion: '<html>proxy error</html>'"),
        ('{"choices": [{"text": ""}]}\n200 0.1\n', "smoke test: the model returned an empty completion"),
    ],
)
def test_smoke_failures_say_what_came_back(output, message):
    with pytest.raises(sc.ServiceCheckFailed) as caught:
        sc.parse_smoke(output)
    assert str(caught.value).startswith(message)


# What a lost KV transfer makes the decoder say (vllm-ascend #8427, #7711): loops, not answers.
@pytest.mark.parametrize(
    ("text", "why"),
    [
        (" the the the the the the future", "the word 'the' repeated 6 or more times in a row"),
        ("的的的的的的的的", "the word '的' repeated 6 or more times in a row"),
        ("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "not one word in it"),
        (" is the is the is the is the future of AI", "'is the' makes up 8 of its 11 words"),
        (" AI is, AI was; AI AI will be AI AI.", "'ai' makes up 6 of its 10 words"),
        (" AI, AI, AI. AI AI AI is the future", "the word 'ai' repeated 6 or more times in a row"),
    ],
)
def test_smoke_refuses_degenerate_text_and_says_what_and_why(text, why):
    with pytest.raises(sc.ServiceCheckFailed) as caught:
        sc.parse_smoke(smoke_output(text))
    message = str(caught.value)
    assert message.startswith(f"smoke test: the model returned degenerate text {text[:80]!r}: {why}, which no answer")
    assert "lost KV transfer" in message and "\n" not in message


@pytest.mark.parametrize("text", ["", "   ", "\n\n", None])
def test_smoke_refuses_an_empty_completion_and_shows_it(text):
    body = json.dumps({"choices": [{"text": text}]})
    with pytest.raises(sc.ServiceCheckFailed, match=r"^smoke test: the model returned an empty completion \("):
        sc.parse_smoke(f"{body}\n200 0.1\n")


@pytest.mark.parametrize(
    "text",
    [
        " bright, and it is already here.",  # the fake hosts' answer
        " bright and full of possibilities. As artificial intelligence continues to evolve, it is transforming "
        "industries, from healthcare to finance, and reshaping how we live and work. However, with great power "
        "comes great responsibility, and we must",
        '<think>\nOkay, the user wrote "The future of AI is" and stopped. They probably want me to complete the '
        "sentence, so I should",
        " 人工智能的未来是光明的，它将改变我们的生活和工作方式。",
        " a question.\n\n------\n\n| year | model |\n|---|---|\n| 2025 | R1 |",
        " ok",
    ],
)
def test_smoke_passes_real_answers(text):
    assert sc.parse_smoke(smoke_output(text)).text == text


def test_smoke_passes_every_text_the_simulator_generates():
    # The local stack's smoke test answers with these: many seeds and lengths, none a loop.
    for seed in range(400):
        for n in (1, 8, 16, 50, 64):
            text = "".join(textgen.generate_tokens("The future of AI is", n, seed))
            assert sc.degenerate(text) is None, (seed, n, text)


def test_smoke_command_sends_the_request_with_the_key_from_the_environment():
    script = sc.smoke_command("http://127.0.0.1:8000", {"model": "m", "prompt": "p"})
    assert '-d \'{"model": "m", "prompt": "p"}\' http://127.0.0.1:8000/v1/completions' in script
    # On curl's standard input, from a here-document: the key is on no command line.
    assert 'curl -H @- "$@" <<EOF\nAuthorization: Bearer ${VLLM_API_KEY}\nEOF' in script
    assert '-H "Authorization' not in script


class _Recorder(http.server.BaseHTTPRequestHandler):
    """An API that answers readiness and the smoke request, recording each request's key."""

    seen: list = []

    def _answer(self, body: bytes) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        self._answer(b'{"data": [{"id": "deepseek_r1"}]}' if self.path == "/v1/models" else b"")

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(json.dumps({"choices": [{"text": " bright"}], "usage": {"completion_tokens": 2}}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()


@pytest.mark.skipif(not shutil.which("curl"), reason="no curl on this machine")
@pytest.mark.parametrize("key", ["sk-plain", "sk-$(touch pwned)-`id`-'\"-\\n-%s"])
def test_readiness_and_smoke_send_the_key_in_a_header_read_from_standard_input(api, key, tmp_path):
    url, seen = api
    readiness = sc.readiness_command(url, "deepseek_r1", 30, 1, "c", "a2")
    smoke = sc.smoke_command(url, {"model": "deepseek_r1", "prompt": "p"})
    outputs = []
    for script in (readiness, smoke):
        done = subprocess.run(
            ["/bin/sh", "-c", sc.secrets_prelude(["VLLM_API_KEY"]) + script],
            input=key + "\n",
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert sc.ready_after_seconds(outputs[0]) >= 0 and sc.parse_smoke(outputs[1]).text == " bright"
    assert seen == [
        ("/health", f"Bearer {key}"),
        ("/v1/models", f"Bearer {key}"),
        ("/v1/completions", f"Bearer {key}"),
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not shutil.which("curl"), reason="no curl on this machine")
def test_without_a_key_no_authorization_header_is_sent(api):
    url, seen = api
    done = subprocess.run(["/bin/sh", "-c", sc.smoke_command(url, {"prompt": "p"})], capture_output=True, text=True)
    assert sc.parse_smoke(done.stdout).text == " bright"
    assert seen == [("/v1/completions", None)]


def test_benchmark_reads_vllms_result_file():
    metrics = sc.parse_benchmark(json.dumps({**BENCHMARK_RESULT, "date": "20261128-010203"}))
    assert metrics == {k: BENCHMARK_RESULT[k] for k in sc.BENCHMARK_KEYS}


@pytest.mark.parametrize(
    "output, message",
    [
        ("Traceback (most recent call last):", "benchmark: the result file is not JSON"),
        (json.dumps({"completed": 3}), "benchmark: the result file lacks request_throughput, output_throughput"),
        (json.dumps({**BENCHMARK_RESULT, "completed": 0}), "benchmark: no request completed"),
    ],
)
def test_benchmark_failures(output, message):
    with pytest.raises(sc.ServiceCheckFailed) as caught:
        sc.parse_benchmark(output)
    assert str(caught.value).startswith(message)


def test_benchmark_command_uses_the_tutorials_parameters_in_the_head_container():
    script = sc.benchmark_command(
        "vllm-ascend", "vllm-ascend/DeepSeek-R1-W8A8", "deepseek_r1", "http://127.0.0.1:8000", Benchmark(), "a2"
    )
    assert script.splitlines()[1] == (
        "docker exec -e OPENAI_API_KEY vllm-ascend vllm bench serve --backend vllm --base-url http://127.0.0.1:8000 "
        "--model vllm-ascend/DeepSeek-R1-W8A8 --served-model-name deepseek_r1 --dataset-name random "
        "--random-input-len 200 --num-prompts 200 --request-rate 1 --save-result --result-dir /root/.cache/benchmarks "
        "--result-filename a2-random-200p-1qps.json >&2"
    )
    assert script.splitlines()[2] == "docker exec vllm-ascend cat /root/.cache/benchmarks/a2-random-200p-1qps.json"


def test_accuracy_reads_lm_evals_table():
    assert sc.parse_accuracy("2025-01-01 INFO evaluating...\n" + LM_EVAL_TABLE) == {
        "gsm8k": {"flexible-extract": 0.9553, "strict-match": 0.9545}
    }


def test_accuracy_without_a_table_fails():
    with pytest.raises(sc.ServiceCheckFailed, match="accuracy: no results table in lm_eval's output"):
        sc.parse_accuracy("lm_eval: command not found")


def test_accuracy_command_points_lm_eval_at_the_head():
    script = sc.accuracy_command(
        "vllm-ascend",
        "deepseek_r1",
        "http://127.0.0.1:8000",
        Accuracy(limit=50, tokenizer="/w", modelArgs="max_retries=5"),
    )
    assert (
        "--model_args model=deepseek_r1,base_url=http://127.0.0.1:8000/v1/completions,tokenizer=/w,"
        "tokenized_requests=False,trust_remote_code=True,max_retries=5"
    ) in script
    assert script.endswith("--tasks gsm8k --output_path /root/.cache/accuracy --limit 50")


def test_staging_is_skipped_once_the_marker_exists():
    script = sc.staging_command("img:v1", "/data/weights", "vllm-ascend/DeepSeek-R1-W8A8", use_modelscope=True)
    assert script.startswith(
        "docker run --rm -e MODELSCOPE_API_TOKEN -e HF_TOKEN -v /data/weights:/root/.cache img:v1 sh -c "
    )
    assert "if [ -f /root/.cache/.staged-vllm-ascend_DeepSeek-R1-W8A8 ]" in script
    assert "huggingface-cli download" in sc.staging_command("i:1", "/w", "org/m", use_modelscope=False)


def test_the_smoke_request_through_a_router_waits_out_its_503s_within_a_bound(tmp_path):
    """A router or proxy answers 503 until it has admitted a group: with retrySeconds the step
    asks again; a 200 then counts, a 500 at once does not."""
    answers = tmp_path / "answers"
    answers.write_text("503\n503\n200\n")
    curl = tmp_path / "curl"
    curl.write_text(
        "#!/bin/sh\n"
        f"code=$(head -n 1 {answers}); sed -i 1d {answers}\n"
        'printf \'{"choices":[{"text":" bright"}],"usage":{"completion_tokens":1}}\\n%s 0.01\\n\' "$code"\n'
    )
    curl.chmod(0o755)
    script = sc.smoke_command("http://127.0.0.1:8080", {"prompt": "x"}, retry_seconds=30)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    done = subprocess.run(
        ["sh", "-c", script.replace("sleep 2", "sleep 0")], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "200 0.01"
    assert answers.read_text() == ""
    answers.write_text("500\n200\n")
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert done.stdout.splitlines()[-1] == "500 0.01"
