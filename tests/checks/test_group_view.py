"""The group view: once the group serves, each node's supervisor sees the head's API and its peers."""

import os

from hoststubs import run_sh, stub

from checks.group_view import group_view_command, judge_group_view
from supervision.protocol import State, metrics_text

SERVING = State(served=True, phase="serving")
PEERS = {"a2-0": "192.0.2.11", "a2-2": "192.0.2.13"}


def judge(text: str):
    return judge_group_view("a2-1", text, "192.0.2.11", 8000, PEERS, 9401)


def test_a_node_that_sees_the_head_and_every_peer_passes():
    result = judge(metrics_text(SERVING, True, True, {"a2-0": True, "a2-2": True}))
    assert (result.ok, result.seen) == (True, "head and 2 peer(s) reached")


def test_what_a_blind_supervisor_cannot_reach_is_named_with_its_port_and_key():
    result = judge(metrics_text(SERVING, True, False, {"a2-0": True, "a2-2": False}))
    assert not result.ok
    assert result.message == (
        "node a2-1: check group-view: expected its supervisor to reach the head's API and every peer's supervisor, "
        "saw it cannot reach the head's API (192.0.2.11 port 8000, serve.port) nor a2-2's supervisor "
        "(192.0.2.13 port 9401, supervision.metricsPort); allow TCP to those ports between the nodes"
    )


def test_a_peer_the_supervisor_does_not_list_counts_as_unreached():
    assert not judge(metrics_text(SERVING, True, True, {"a2-0": True})).ok


def test_no_answer_from_the_supervisor_itself():
    result = judge("curl: (7) Failed to connect to 192.0.2.12 port 9401: Connection refused\n")
    assert not result.ok
    assert result.seen.startswith("no answer from its supervisor (curl: (7) Failed to connect")


def test_the_command_waits_for_the_supervisor_to_learn_that_the_group_serves(tmp_path):
    # The first two answers still show the head unseen (the supervisor's next poll has not come).
    counter = tmp_path / "count"
    blind = metrics_text(SERVING, True, False, {"a2-0": True})
    seeing = metrics_text(SERVING, True, True, {"a2-0": True})
    (tmp_path / "blind").write_text(blind)
    (tmp_path / "seeing").write_text(seeing)
    stub(
        tmp_path / "curl",
        f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n + 1)) > {counter}\n"
        f'if [ "$n" -lt 2 ]; then cat {tmp_path}/blind; else cat {tmp_path}/seeing; fi\n',
    )
    stub(tmp_path / "sleep", "exit 0")
    result = run_sh(group_view_command("http://192.0.2.12:9401/metrics", 30), f"{tmp_path}:{os.environ['PATH']}")
    assert result.stdout == seeing
    assert counter.read_text().strip() == "3"
