"""OpenAI-compatible HTTP API of the DP head (stdlib http.server)."""

import json
import os
import select
import socket
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vllm_sim import textgen
from vllm_sim.faults import stall_if_hung
from vllm_sim.log import log
from vllm_sim.metrics import Metrics
from vllm_sim.sched import Ranks
from vllm_sim.steps import ClientGone, Seq, StepLoop

DEFAULT_MAX_MODEL_LEN = 163840  # DeepSeek-R1's max_position_embeddings
DEFAULT_MAX_TOKENS = 16


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "BadRequestError"):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_


class Engine:
    """What the HTTP layer needs: model identity, health, generation, metrics."""

    def __init__(self, args, health_fn, head=None, hccl_timeout: float = 1836.0, fresh_gauge: bool = False):
        self.model = args.model
        # vllm answers to the first served name (the others are aliases).
        self.served_name = args.served_model_name[0] if args.served_model_name else args.model
        self.max_model_len = args.max_model_len or DEFAULT_MAX_MODEL_LEN
        self.seed = args.seed if args.seed is not None else 0
        keys = args.api_key or [os.environ.get("VLLM_API_KEY")]
        self.api_keys = frozenset(k for k in keys if k)
        self.health_fn = health_fn
        self.created = int(time.time())
        max_num_seqs = args.max_num_seqs or 256  # per DP rank, as vllm's scheduler reads it
        spec = args.speculative_config or {}
        # Each rank has room for every sequence at 1k tokens: a full batch of long requests fills it.
        kv_per_rank = int(os.environ.get("VLLM_SIM_KV_CACHE_TOKENS", max_num_seqs * 1024))
        self.metrics = Metrics(
            self.served_name,
            kv_cache_tokens=kv_per_rank * args.data_parallel_size,
            spec_tokens=int(spec.get("num_speculative_tokens", 0)),
        )
        self.ranks = Ranks(self.metrics, args.data_parallel_size, max_num_seqs)
        # The engine's steps, a collective with the DP peers of `head` (dp.DPHead) each.
        tpot = float(os.environ.get("VLLM_SIM_TPOT_MS", "2")) / 1000.0
        rank_rate = float(os.environ.get("VLLM_SIM_RANK_TOKENS_PER_S") or 0)
        self.steps = StepLoop(self.metrics, head, tpot, hccl_timeout, fresh_gauge, rank_rate)
        self.prefill_per_tok = float(os.environ.get("VLLM_SIM_PREFILL_US_PER_TOKEN", "20")) / 1e6
        self.ttft_base = float(os.environ.get("VLLM_SIM_TTFT_BASE_MS", "5")) / 1000.0

    # -- request validation
    def prepare(self, body: dict, chat: bool) -> dict:  # noqa: C901 (one branch per start-up check)
        model = body.get("model")
        if model is not None and model != self.served_name:
            raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError")
        if chat:
            msgs = body.get("messages")
            if not isinstance(msgs, list) or not msgs:
                raise ApiError(400, "'messages' must be a non-empty list")
            prompt = textgen.chat_prompt(msgs)
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list):
                if prompt and all(isinstance(p, int) for p in prompt):
                    prompt = " ".join(f"t{p}" for p in prompt)  # token ids
                elif len(prompt) == 1 and isinstance(prompt[0], str):
                    prompt = prompt[0]
                else:
                    raise ApiError(400, "the simulator supports one prompt per request")
            if not isinstance(prompt, str):
                raise ApiError(400, "'prompt' must be a string")
        n_prompt = textgen.count_tokens(prompt)
        # As in vllm: chat requests take max_completion_tokens (or max_tokens); a completions
        # request only knows max_tokens and ignores any other field with a warning.
        max_tokens = body.get("max_completion_tokens") if chat else None
        if not chat and "max_completion_tokens" in body:
            log("WARNING: /v1/completions ignores the unknown field max_completion_tokens; use max_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = DEFAULT_MAX_TOKENS
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ApiError(400, f"max_tokens must be at least 1, got {max_tokens!r}.")
        temperature = body.get("temperature", 1.0)
        if temperature is not None and (not isinstance(temperature, (int, float)) or temperature < 0):
            raise ApiError(400, f"temperature must be non-negative, got {temperature!r}.")
        if n_prompt + max_tokens > self.max_model_len:
            raise ApiError(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. "
                f"However, you requested {n_prompt + max_tokens} tokens "
                f"({n_prompt} in the messages, {max_tokens} in the completion). "
                "Please reduce the length of the messages or completion.",
            )
        seed = body.get("seed")
        if not isinstance(seed, int):
            seed = self.seed
        stream_opts = body.get("stream_options") or {}
        return {
            "chat": chat,
            "prompt": prompt,
            "n_prompt": n_prompt,
            "max_tokens": max_tokens,
            "seed": seed,
            "stream": bool(body.get("stream")),
            "include_usage": bool(stream_opts.get("include_usage")),
        }

    def generate(self, req: dict, gone=lambda: False):
        """Yield tokens as the engine's steps make them (`steps.StepLoop`); `gone()` says the
        client left, which aborts the request (steps.ClientGone)."""
        m = self.metrics
        start = time.monotonic()  # TTFT counts the time queued for a place on a rank
        seq = Seq(req["n_prompt"], req["max_tokens"])
        self.ranks.admit(seq, gone)
        ttft, yielded = 0.0, 0
        try:
            tokens = textgen.generate_tokens(req["prompt"], req["max_tokens"], req["seed"])
            # The prefill's compute, before the request's first decode step.
            time.sleep(self.ttft_base + req["n_prompt"] * self.prefill_per_tok)
            self.steps.join(seq)
            last, checked = None, time.monotonic()
            while yielded < len(tokens):
                if time.monotonic() - checked > 0.1:
                    checked = time.monotonic()
                    if gone():
                        raise ClientGone()
                have = self.steps.wait(seq, yielded, gone)
                for tok in tokens[yielded:have]:
                    now = time.monotonic()
                    if last is None:
                        ttft = now - start
                    else:
                        m.token(now - last)
                    last = now
                    yielded += 1
                    yield tok
        finally:
            self.steps.abort(seq)  # a no-op once the engine finished it
            self.ranks.release(seq)
        m.finished(req["n_prompt"], req["max_tokens"], ttft, time.monotonic() - start)


def client_gone(sock) -> bool:
    """Whether the client closed its connection (vllm aborts the request then, streaming or not)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def make_handler(engine: Engine):  # noqa: C901 (one branch per API route)
    class Handler(BaseHTTPRequestHandler):
        server_version = "vllm-sim"
        sys_version = ""

        def log_message(self, fmt, *a):
            log(f'{self.client_address[0]} "{self.requestline}" {fmt % a if a else fmt}')

        def log_request(self, code="-", size="-"):
            log(f'{self.client_address[0]} "{self.requestline}" {code}')

        # -- helpers
        def _json(self, status: int, obj) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, e: ApiError) -> None:
            self._json(
                e.status, {"object": "error", "message": e.message, "type": e.type, "param": None, "code": e.status}
            )

        def _authorized(self) -> bool:
            if not engine.api_keys:
                return True
            scheme, _, key = self.headers.get("Authorization", "").partition(" ")
            if scheme == "Bearer" and key in engine.api_keys:
                return True
            self._json(401, {"error": "Unauthorized"})
            return False

        def _ready(self) -> bool:
            if engine.health_fn():
                return True
            self._error(
                ApiError(503, "The engine is not ready or has lost a data-parallel rank.", "ServiceUnavailableError")
            )
            return False

        # -- routes
        def do_GET(self):
            stall_if_hung()
            path = self.path.split("?", 1)[0]
            if path == "/health":
                self.send_response(200 if engine.health_fn() else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/metrics":
                data = engine.metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif path == "/version":
                from vllm_sim import __version__

                self._json(200, {"version": __version__})
            elif path == "/v1/models":
                if not self._authorized():
                    return
                self._json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": engine.served_name,
                                "object": "model",
                                "created": engine.created,
                                "owned_by": "vllm",
                                "root": engine.model,
                                "parent": None,
                                "max_model_len": engine.max_model_len,
                                "permission": [],
                            }
                        ],
                    },
                )
            elif path.startswith("/v1/"):
                if self._authorized():
                    self._error(ApiError(404, f"Not Found: {path}", "NotFoundError"))
            else:
                self._json(404, {"detail": "Not Found"})

        def do_POST(self):
            stall_if_hung()
            path = self.path.split("?", 1)[0]
            if path not in ("/v1/completions", "/v1/chat/completions", "/invocations"):
                if path.startswith("/v1/") and not self._authorized():
                    return
                self._json(404, {"detail": "Not Found"})
                return
            # As vllm: the key guards /v1 only; /invocations (SageMaker's route) serves anyone.
            if path != "/invocations" and not self._authorized():
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
            except ValueError as e:
                self._error(ApiError(400, f"invalid JSON body: {e}"))
                return
            if not self._ready():
                return
            chat = path == "/v1/chat/completions" or (path == "/invocations" and "messages" in body)
            try:
                req = engine.prepare(body, chat)
            except ApiError as e:
                self._error(e)
                return
            if req["stream"]:
                self._stream(req)
            else:
                self._complete(req)

        def _ids(self, req):
            prefix = "chatcmpl" if req["chat"] else "cmpl"
            return f"{prefix}-{uuid.uuid4().hex}", int(time.time())

        def _usage(self, req):
            return {
                "prompt_tokens": req["n_prompt"],
                "completion_tokens": req["max_tokens"],
                "total_tokens": req["n_prompt"] + req["max_tokens"],
            }

        def _gone(self) -> bool:
            return client_gone(self.connection)

        def _complete(self, req):
            try:
                text = "".join(engine.generate(req, self._gone))
            except ClientGone:
                log(f"Aborted request {self._ids(req)[0]}.")
                self.close_connection = True
                return
            rid, created = self._ids(req)
            if req["chat"]:
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "reasoning_content": None, "tool_calls": []},
                    "logprobs": None,
                    "finish_reason": "length",
                    "stop_reason": None,
                }
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length", "stop_reason": None}
                obj = "text_completion"
            self._json(
                200,
                {
                    "id": rid,
                    "object": obj,
                    "created": created,
                    "model": engine.served_name,
                    "choices": [choice],
                    "usage": self._usage(req),
                },
            )

        def _stream(self, req):
            rid, created = self._ids(req)
            obj = "chat.completion.chunk" if req["chat"] else "text_completion"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            def send(payload):
                self.wfile.write(f"data: {payload}\n\n".encode())
                self.wfile.flush()

            def chunk(delta_text, finish=None, first=False):
                if req["chat"]:
                    delta = {"content": delta_text}
                    if first:
                        delta["role"] = "assistant"
                    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                else:
                    choice = {"index": 0, "text": delta_text, "logprobs": None, "finish_reason": finish}
                return {"id": rid, "object": obj, "created": created, "model": engine.served_name, "choices": [choice]}

            try:
                n = req["max_tokens"]
                for i, tok in enumerate(engine.generate(req, self._gone)):
                    send(json.dumps(chunk(tok, "length" if i == n - 1 else None, i == 0)))
                if req["include_usage"]:
                    send(
                        json.dumps(
                            {
                                "id": rid,
                                "object": obj,
                                "created": created,
                                "model": engine.served_name,
                                "choices": [],
                                "usage": self._usage(req),
                            }
                        )
                    )
                send("[DONE]")
            except (BrokenPipeError, ConnectionResetError, ClientGone):
                log(f"Aborted request {rid}.")

    return Handler


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
