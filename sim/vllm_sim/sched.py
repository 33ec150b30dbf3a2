"""A group's capacity: the head places each request on a DP rank, and each rank runs at most
--max-num-seqs requests at once, the rest waiting in its queue.

As in vllm: the API server sends a request to the engine (DP rank) with the lowest score
4 x waiting + running (DPLBAsyncMPClient), and that engine's scheduler runs at most
--max-num-seqs requests, admitting the waiting ones first come, first served. The simulator
keeps every rank's queue on the head (the headless nodes only take part in the steps'
collectives) and counts exactly, where vllm's client balances on counts up to 100 ms old.
A client that leaves while its request waits takes it out of the queue, as vllm's abort does.
How fast the running requests get tokens is the step loop's part (`steps`).
"""

import threading
import time
from collections import deque

from vllm_sim.steps import ClientGone, Seq


class Ranks:
    def __init__(self, metrics, dp_size: int, max_num_seqs: int):
        self.m = metrics
        self.max_num_seqs = max_num_seqs
        self.running = [0] * dp_size
        self.queues: list[deque[Seq]] = [deque() for _ in range(dp_size)]
        self.cond = threading.Condition()

    def admit(self, seq: Seq, gone=lambda: False) -> None:
        """Place `seq` on the least loaded rank and block until that rank runs it; ClientGone when
        the client left first."""
        start = time.monotonic()
        with self.cond:
            seq.rank = min(range(len(self.running)), key=lambda r: (4 * len(self.queues[r]) + self.running[r], r))
            queue = self.queues[seq.rank]
            queue.append(seq)
            with self.m.lock:
                self.m.waiting += 1
            while queue[0] is not seq or self.running[seq.rank] >= self.max_num_seqs:
                self.cond.wait(0.1)
                if (queue[0] is not seq or self.running[seq.rank] >= self.max_num_seqs) and gone():
                    queue.remove(seq)
                    self.m.left_queue()
                    self.cond.notify_all()  # the next in line may be first now
                    raise ClientGone()
            queue.popleft()
            self.running[seq.rank] += 1
            self.m.admitted(seq.n_prompt, time.monotonic() - start)
            self.cond.notify_all()  # the next in line may fit too

    def release(self, seq: Seq) -> None:
        """`seq` left its rank (finished or aborted): the rank's next waiting request may run."""
        with self.cond:
            self.running[seq.rank] -= 1
            self.cond.notify_all()
