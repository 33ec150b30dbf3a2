"""The simulator's /metrics under load: every series the dashboard and alert rules read moves;
the scheduler's gauges are what the last engine step published; the process start time stays put."""

import re

from vllm_sim import metrics
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
    m.publish()  # an engine step finished
    text = m.render()
    assert sample(text, f"vllm:num_requests_running{{{LBL}}}") == 4
    assert sample(text, f"vllm:num_requests_waiting{{{LBL}}}") == 1
    assert sample(text, f"vllm:kv_cache_usage_perc{{{LBL}}}") == 0.8
    assert sample(text, f"vllm:num_preemptions_total{{{LBL}}}") == 0

    for _ in range(201):  # past the cache's 1000 tokens: vllm would preempt
        m.generated()
        m.token(0.02)
    m.publish()
    text = m.render()
    assert sample(text, f"vllm:num_preemptions_total{{{LBL}}}") == 1
    assert sample(text, f"vllm:kv_cache_usage_perc{{{LBL}}}") == 1.0
    assert sample(text, f'vllm:inter_token_latency_seconds_bucket{{le="0.025",{LBL}}}') == 201
    assert sample(text, f'vllm:request_queue_time_seconds_bucket{{le="0.5",{LBL}}}') == 4

    for _ in range(4):
        m.released(prompt_tokens=200, generated=51)
        m.finished(200, 51, ttft=0.1, e2e=1.2)
    m.publish()
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


def test_gauges_are_what_the_last_engine_step_published():
    m = Metrics("m", kv_cache_tokens=1000)
    for _ in range(3):
        m.waiting += 1
        m.admitted(prompt_tokens=10, queued=0.0)
    assert sample(m.render(), f"vllm:num_requests_running{{{LBL}}}") == 0  # no step yet
    m.generated(10)
    m.publish()
    assert sample(m.render(), f"vllm:num_requests_running{{{LBL}}}") == 3
    assert sample(m.render(), f"vllm:generation_tokens_total{{{LBL}}}") == 1
    assert sample(m.render(), f"vllm:prompt_tokens_total{{{LBL}}}") == 10
    for _ in range(3):  # aborted between steps: no step publishes it (vllm #22545)
        m.released(10, 1)
    assert sample(m.render(), f"vllm:num_requests_running{{{LBL}}}") == 3
    m.publish()
    assert sample(m.render(), f"vllm:num_requests_running{{{LBL}}}") == 0


def test_process_start_time_does_not_move_when_the_clock_is_stepped(monkeypatch):
    def scraped() -> float:
        return float(re.search(r"^process_start_time_seconds (\S+)$", Metrics("m", 10).render(), re.M).group(1))

    before = scraped()
    assert before == metrics.process_start_time()
    stepped = metrics._boot_time() + 3600  # the kernel's btime follows a clock step
    monkeypatch.setattr(metrics, "_boot_time", lambda: stepped)
    assert abs(metrics._process_start_time() - before - 3600) < 1  # what re-reading would give
    assert scraped() == before
