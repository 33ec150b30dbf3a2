"""The simulator's /metrics under load: every series the dashboard and alert rules read moves."""

from vllm_sim.metrics import Metrics

LBL = 'model_name="m"'


def sample(text: str, series: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(series + " "))
    return float(line.rsplit(" ", 1)[1])


def test_kv_cache_preemptions_queue_and_speculation_follow_the_load():
    m = Metrics("m", kv_cache_tokens=1000, spec_tokens=3)
    for _ in range(4):
        m.waiting += 1
        m.admitted(prompt_tokens=200, queued=0.5)
    m.waiting += 1  # one more still queued
    text = m.render()
    assert sample(text, f"vllm:num_requests_running{{{LBL}}}") == 4
    assert sample(text, f"vllm:num_requests_waiting{{{LBL}}}") == 1
    assert sample(text, f"vllm:kv_cache_usage_perc{{{LBL}}}") == 0.8
    assert sample(text, f"vllm:num_preemptions_total{{{LBL}}}") == 0

    for _ in range(201):  # past the cache's 1000 tokens: vllm would preempt
        m.token(0.02)
    text = m.render()
    assert sample(text, f"vllm:num_preemptions_total{{{LBL}}}") == 1
    assert sample(text, f"vllm:kv_cache_usage_perc{{{LBL}}}") == 1.0
    assert sample(text, f'vllm:inter_token_latency_seconds_bucket{{le="0.025",{LBL}}}') == 201
    assert sample(text, f'vllm:request_queue_time_seconds_bucket{{le="0.5",{LBL}}}') == 4

    for _ in range(4):
        m.released(prompt_tokens=200, generated=51)
        m.finished(200, 51, ttft=0.1, e2e=1.2)
    text = m.render()
    assert sample(text, f"vllm:num_requests_running{{{LBL}}}") == 0
    # Each request's 50 tokens after the first: ceil(50 / (1 + 3 x 0.7)) = 17 steps of 3 drafts.
    assert sample(text, f"vllm:spec_decode_num_draft_tokens_total{{{LBL}}}") == 4 * 51
    assert sample(text, f"vllm:spec_decode_num_accepted_tokens_total{{{LBL}}}") == 4 * 36
    assert sample(text, f"vllm:e2e_request_latency_seconds_count{{{LBL}}}") == 4


def test_without_speculative_decoding_there_are_no_draft_series():
    m = Metrics("m", kv_cache_tokens=1000)
    m.waiting += 1
    m.admitted(10, 0.0)
    m.released(10, 5)
    m.finished(10, 5, 0.1, 0.2)
    assert "spec_decode" not in m.render()
