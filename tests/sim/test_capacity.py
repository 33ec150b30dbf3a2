"""A group's capacity: at most --max-num-seqs requests run per DP rank, the rest wait on the rank
the head placed them on, and output throughput levels off at what the ranks can make."""

import json
import subprocess
import sys
import threading

import pytest
from simhelpers import MODEL, SERVED, VLLM, free_port, http, metric, stream, wait_for

from vllm_sim.metrics import Metrics
from vllm_sim.sched import Ranks
from vllm_sim.steps import ClientGone, Seq

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
QUEUED = "vllm:request_queue_time_seconds_count"  # observed as a request leaves the queue to run


def start_group(sim, max_num_seqs=2, dp=2, node="n", **env):
    """One node holding every rank of a group of `dp` ranks."""
    hp = free_port()
    args = ["serve", MODEL, "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(hp)]
    args += ["--data-parallel-size", str(dp), "--max-num-seqs", str(max_num_seqs)]
    sim.start(args, npus=dp, extra=env, node=node)
    wait_for(lambda: http("GET", f"http://127.0.0.1:{hp}/health", timeout=2)[0] == 200, 10, what="ready")
    return hp


def gauges(hp):
    return metric(hp, RUNNING), metric(hp, WAITING)


def test_each_rank_runs_max_num_seqs_and_the_rest_wait_on_their_rank(sim):
    hp = start_group(sim)
    # Long requests (40 s at 2 ms a token): nothing finishes during the test. One at a time, so
    # the head places them in a known order.
    streams = []
    try:
        for i in range(4):
            streams.append(stream(hp, max_tokens=20000))
            wait_for(lambda n=i + 1: metric(hp, QUEUED) == n, 5, what=f"request {i} running")
        streams.append(stream(hp, max_tokens=20000))
        wait_for(lambda: gauges(hp) == (4, 1), 5, what="4 running, 1 waiting")
        assert metric(hp, QUEUED) == 4  # the 5th has not left the queue
        # The head placed them on the least loaded rank: 0, 1, 0, 1, and the 5th waits on rank 0
        # (a tie goes to the lowest rank). A place freed on rank 1 does not help it, as in vllm,
        # whose engines queue on their own.
        streams[1].close()
        wait_for(lambda: gauges(hp) == (3, 1), 5, what="3 running, the 5th still waiting")
        streams[0].close()
        wait_for(lambda: gauges(hp) == (3, 0), 5, what="the 5th running on rank 0")
        assert metric(hp, QUEUED) == 5
        assert streams[4].readline().startswith(b"data: ")  # it gets tokens
    finally:
        for s in streams:
            s.close()


def bench(sim, hp, num_prompts, output_len, concurrency, tmp_path):
    target = tmp_path / f"bench-{concurrency}.json"
    args = ["bench", "serve", "--port", str(hp), "--model", MODEL, "--served-model-name", SERVED]
    args += ["--random-input-len", "16", "--random-output-len", str(output_len), "--num-prompts", str(num_prompts)]
    args += ["--max-concurrency", str(concurrency), "--save-result", "--result-filename", str(target)]
    r = subprocess.run(
        [sys.executable, str(VLLM), *args], env=sim.env(npus=1), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(target.read_text())


@pytest.mark.parametrize(
    "env, rank_rate",
    [
        # Memory bound: each running request gets a token per 10 ms step, a rank makes 2 x 100.
        ({"VLLM_SIM_TPOT_MS": "10"}, 200.0),
        # Compute bound: a rank makes 100 tokens/s, shared by its running requests.
        ({"VLLM_SIM_RANK_TOKENS_PER_S": "100"}, 100.0),
    ],
)
def test_output_throughput_levels_off_at_the_groups_capacity(sim, tmp_path, env, rank_rate):
    ranks, max_num_seqs, output_len = 2, 2, 30
    hp = start_group(sim, max_num_seqs, ranks, **env)
    capacity = ranks * rank_rate
    # Twice as many clients as the group runs at once: half of them queue.
    res = bench(sim, hp, num_prompts=12, output_len=output_len, concurrency=2 * ranks * max_num_seqs, tmp_path=tmp_path)
    assert res["completed"] == 12 and res["failed"] == 0
    assert res["output_throughput"] <= capacity * 1.05
    assert res["output_throughput"] >= capacity * 0.4  # it does fill the group (a loose bound)
    # A queued request waits for a running one to finish, and TTFT counts that wait.
    one_request = output_len * max_num_seqs / rank_rate
    assert res["p99_ttft_ms"] / 1000 >= 0.8 * one_request
    assert metric(hp, "vllm:time_to_first_token_seconds_sum") >= 0.8 * one_request * 4
    assert metric(hp, "vllm:request_queue_time_seconds_sum") > 0


def test_a_second_group_adds_its_capacity(sim, tmp_path):
    """What scaling out buys: two groups under the same load make more than one group can."""
    capacity = 2 * 2 * 100.0  # 2 ranks x 2 places x a token per 10 ms
    ports = [start_group(sim, node=node, VLLM_SIM_TPOT_MS="10") for node in ("a", "b")]
    results = {}

    def load(hp):
        (tmp_path / str(hp)).mkdir()
        results[hp] = bench(sim, hp, num_prompts=12, output_len=30, concurrency=8, tmp_path=tmp_path / str(hp))

    clients = [threading.Thread(target=load, args=(hp,)) for hp in ports]
    for t in clients:
        t.start()
    for t in clients:
        t.join(60)
    assert sorted(results) == sorted(ports)
    total = sum(r["output_throughput"] for r in results.values())
    assert 1.2 * capacity <= total <= 2 * capacity * 1.05


def test_the_head_places_on_the_least_loaded_rank_and_admits_first_come_first_served():
    m = Metrics("m", kv_cache_tokens=1000)
    ranks = Ranks(m, dp_size=2, max_num_seqs=1)
    first, second = Seq(1, 1), Seq(1, 1)
    ranks.admit(first)
    ranks.admit(second)
    assert (first.rank, second.rank, m.running, m.waiting) == (0, 1, 2, 0)

    queued = [Seq(1, 1) for _ in range(3)]
    admitted = []

    def client(seq, gone=lambda: False):
        try:
            ranks.admit(seq, gone)
            admitted.append(seq)
        except ClientGone:
            admitted.append(None)

    leaves = threading.Event()
    threads = [threading.Thread(target=client, args=(queued[0],))]
    threads.append(threading.Thread(target=client, args=(queued[1], leaves.is_set)))
    threads.append(threading.Thread(target=client, args=(queued[2],)))
    for n, t in enumerate(threads, 1):  # one at a time, so their order is known
        t.start()
        wait_for(lambda n=n: sum(len(q) for q in ranks.queues) == n, 2, what="queued")
    assert [s.rank for s in queued] == [0, 1, 0] and m.waiting == 3

    leaves.set()  # the client of the one on rank 1 gives up
    wait_for(lambda: admitted == [None], 2, what="the abandoned request to leave the queue")
    assert m.waiting == 2
    ranks.release(first)
    wait_for(lambda: len(admitted) == 2, 2, what="rank 0's first in line to run")
    assert admitted[1] is queued[0] and m.waiting == 1
    ranks.release(queued[0])
    for t in threads:
        t.join(2)
    assert admitted[2] is queued[2] and ranks.running == [1, 1] and m.waiting == 0
