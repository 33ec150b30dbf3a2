"""The head's engine loop: one decode step at a time, each one a collective of every DP rank.

vllm serves DeepSeek (MoE, expert parallel) with its DP ranks in lockstep: while any rank has
requests, every rank runs a forward pass each step (dummy batches on idle ranks) and the expert
layers exchange tokens across all ranks (vllm docs, "Data Parallel Deployment"). While no rank
has work, no forward pass and no collective runs. The simulator keeps that shape:

* Requests join a batch; every step gives each member one token. A step runs only while the
  batch is not empty: an idle group runs no collectives.
* A step takes VLLM_SIM_TPOT_MS, or longer when a rank's share of the batch is more than its
  token rate allows (VLLM_SIM_RANK_TOKENS_PER_S, unset: no limit): decoding is memory bound
  at small batches, compute bound at large ones, and the ranks step in lockstep, so the
  busiest rank sets the pace. How many requests a rank runs at all is `sched`'s part.
* With remote ranks, a step ends only when every joined peer has acknowledged it (the
  headless engine core answers `step` with `step_done`). A hung or stalled rank never does, so
  the others wait in the collective; after HCCL_EXEC_TIMEOUT seconds (CANN: default 1836, 0 =
  never) the waiting engine fails with HCCL's EI0002 and vllm exits 1. A hung or stalled rank
  itself never times out; it is wedged.
* Scheduler gauges (vllm:num_requests_running, _waiting, kv_cache_usage_perc) are what the last
  finished step published, as in vllm: a stuck step leaves them as they were, and when all
  running requests are aborted between steps no step publishes again (vllm #22545), so they
  keep the old values until the next request (unless VLLM_SIM_MODE has fresh-running-gauge).
  vllm:generation_tokens_total and vllm:prompt_tokens_total count per step.
"""

import threading
import time
from collections import Counter

from vllm_sim import engine_core, faults
from vllm_sim.log import error


class ClientGone(Exception):
    """The client closed its connection: vllm aborts the request."""


class Seq:
    """A request in the engine: how many tokens it wants and has got."""

    def __init__(self, n_prompt: int, max_tokens: int):
        self.n_prompt, self.max_tokens = n_prompt, max_tokens
        self.produced = 0
        self.done = False
        self.aborted = False
        self.rank = 0  # the DP rank the head placed it on (`sched`)


class StepLoop:
    def __init__(self, metrics, head=None, tpot=0.002, hccl_timeout=1836.0, fresh_gauge=False, rank_tokens_per_s=0.0):
        self.m = metrics
        self.head = head
        self.tpot = tpot
        self.rank_tokens_per_s = rank_tokens_per_s
        self.hccl_timeout = hccl_timeout
        self.fresh_gauge = fresh_gauge
        self.cond = threading.Condition()
        self.batch: list[Seq] = []
        self.steps = 0
        self.pending = False
        threading.Thread(target=self._run, name="engine-steps", daemon=True).start()

    # -- the request side
    def join(self, seq: Seq) -> None:
        with self.cond:
            self.batch.append(seq)
            self.cond.notify_all()

    def wait(self, seq: Seq, have: int, gone=lambda: False) -> int:
        """Block until `seq` has more than `have` tokens; ClientGone when the client left."""
        with self.cond:
            while seq.produced <= have:
                self.cond.wait(0.1)
                if seq.produced <= have and gone():
                    raise ClientGone()
            return seq.produced

    def abort(self, seq: Seq) -> None:
        """An aborted request leaves the batch between steps; no step publishes its departure."""
        with self.cond:
            if seq.done or seq.aborted:
                return
            seq.aborted = True
            if seq in self.batch:
                self.batch.remove(seq)
            self.m.released(seq.n_prompt, seq.produced)
            if self.fresh_gauge and not self.pending:
                self.m.publish()

    # -- the engine side
    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.batch:
                    self.cond.wait()
                members = list(self.batch)
                running_at_start = self.m.running
                self.pending = True
                n = self.steps + 1
            time.sleep(self._step_seconds(members))  # the forward pass
            faults.block_if_wedged()
            self._collective(n)
            faults.block_if_wedged()
            with self.cond:
                self.pending = False
                self.steps = n
                finished = 0
                for seq in members:
                    if seq.aborted:
                        continue
                    seq.produced += 1
                    self.m.generated(seq.n_prompt if seq.produced == 1 else 0)
                    if seq.produced >= seq.max_tokens:
                        seq.done = True
                        self.batch.remove(seq)
                        self.m.released(seq.n_prompt, seq.produced)
                        finished += 1
                if self.fresh_gauge:
                    self.m.publish()
                else:
                    self.m.publish(running=running_at_start - finished)
                idle = not self.batch
                self.cond.notify_all()
            if idle and self.head is not None:
                self.head.broadcast({"type": "idle"})

    def _step_seconds(self, members: list[Seq]) -> float:
        if not self.rank_tokens_per_s:
            return self.tpot
        busiest = max(Counter(seq.rank for seq in members).values())
        return max(self.tpot, busiest / self.rank_tokens_per_s)

    def _collective(self, n: int) -> None:
        """Every joined peer acknowledges step n, or this engine fails after HCCL_EXEC_TIMEOUT."""
        if self.head is None:
            return
        peers = self.head.step_peers()
        if not peers:
            return
        for peer in peers:
            peer.send({"type": "step", "n": n})
        deadline = time.monotonic() + self.hccl_timeout if self.hccl_timeout else None
        with self.head.ack_cond:
            while True:
                missing = [p for p in peers if p.acked < n]
                if not missing:
                    return
                if faults.wedged():
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self.head.ack_cond.wait(1.0 if left is None else min(left, 1.0))
        faults.block_if_wedged()
        ranks = ", ".join(p.ranks for p in missing)
        error(
            f"{engine_core.CORES.label()} RuntimeError: HCCL collective of "
            f"data-parallel step {n} timed out after {self.hccl_timeout:g}s (HCCL_EXEC_TIMEOUT). EI0002: The wait "
            "execution of the Notify register times out. Reason: The Notify register has not received the "
            f"Notify record from remote rank: [{ranks}]."
        )
        error("EngineCore encountered a fatal error; the engine is dead, shutting down the API server")
        engine_core.die(1)
