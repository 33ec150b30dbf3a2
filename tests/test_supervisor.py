"""The group supervisor's decisions: given what a node observes, what it does (no processes)."""

import json
from dataclasses import replace

import pytest
from mocked import run_program, stack_settings

from core.config import load_config
from core.plan import plan_cluster
from core.supervision import SUPERVISOR_PATH
from supervision.protocol import (
    SETTINGS_FILE,
    Observation,
    Peer,
    Restart,
    Settings,
    State,
    backoff,
    barrier,
    begin_restart,
    decide,
    durable,
    kv_transfer_failed,
    load_state,
    metrics_text,
    on_start,
    parse_peer,
    scan_log,
    sum_of,
)

SETTINGS = Settings(
    node="a2-1",
    bind="192.0.2.12",
    port=9401,
    peers={"a2-0": "http://192.0.2.11:9401"},
    head_url="http://192.0.2.11:8000",
    group="f00d",
    served_model_name="deepseek_r1",
    group_epoch=0,
    start_grace_seconds=3600,
    unhealthy_seconds=60,
    stall_seconds=300,
    backoff_seconds=10,
    max_backoff_seconds=600,
    max_restarts=5,
    stop_timeout_seconds=30,
    barrier_timeout_seconds=120,
    poll_seconds=2,
    state_file="/opt/deepseek-r1-ascend/state.json",
    interactive_env=False,
)
SERVING = State(gen=3, phase="serving", started_at=0.0, served=True, head_start_time=1000.0, restarts=2)


PEER_SERVING = Peer(3, "x", "serving")


def seen(now=100.0, exit=None, healthy=True, start=1000.0, peer=PEER_SERVING, running=0.0, tokens=None):
    return Observation(
        now=now,
        vllm_exit=exit,
        head_healthy=healthy,
        head_start_time=start,
        head_running=running,
        head_tokens=tokens,
        peers={"a2-0": peer},
    )


def test_a_serving_group_is_left_alone():
    assert decide(SETTINGS, SERVING, seen()) == (replace(SERVING, progress_at=100.0), None)


def test_a_crashed_vllm_restarts_the_group_under_the_next_generation():
    state, restart = decide(SETTINGS, SERVING, seen(exit=-9))
    assert restart == Restart(4, "vllm exited with status -9")


def test_a_peer_with_a_newer_generation_is_followed_with_its_reason():
    _, restart = decide(SETTINGS, SERVING, seen(peer=Peer(4, "vllm exited with status 1", "stopping")))
    assert restart == Restart(4, "node a2-0 restarted the group: vllm exited with status 1")


def test_the_same_fault_seen_by_two_nodes_gives_one_generation():
    head_view = decide(replace(SETTINGS, node="a2-0"), SERVING, seen(now=200, healthy=False, peer=None))
    since = replace(SERVING, unhealthy_since=100.0)
    mine = decide(SETTINGS, since, seen(now=200, healthy=False))
    head = decide(replace(SETTINGS, node="a2-0"), since, seen(now=200, healthy=False))
    assert head_view[1] is None  # the first failing poll only starts the clock
    assert mine[1] == head[1] == Restart(4, "the head's /health failed for 100s")


def test_the_initial_load_is_never_judged_by_health():
    starting = State(gen=0, started_at=0.0)
    for now in (10.0, 600.0, 1800.0, 3599.0):
        state, restart = decide(
            SETTINGS, starting, seen(now=now, healthy=False, start=None, peer=Peer(0, "", "starting"))
        )
        assert restart is None, now
    _, restart = decide(SETTINGS, starting, seen(now=3600.0, healthy=False, start=None, peer=Peer(0, "", "starting")))
    assert restart == Restart(1, "the group did not serve within startGraceSeconds (3600s)")


def test_a_crash_during_the_load_still_restarts():
    _, restart = decide(SETTINGS, State(gen=0), seen(now=5.0, exit=1, healthy=False, peer=Peer(0, "", "starting")))
    assert restart == Restart(1, "vllm exited with status 1")


def test_health_failing_after_the_group_served_restarts_after_unhealthy_seconds():
    state, restart = decide(SETTINGS, SERVING, seen(now=100.0, healthy=False))
    assert restart is None and state.unhealthy_since == 100.0
    state, restart = decide(SETTINGS, state, seen(now=159.0, healthy=False))
    assert restart is None
    state, restart = decide(SETTINGS, state, seen(now=130.0, healthy=True))
    assert state.unhealthy_since is None  # a blip resets the clock
    state, _ = decide(SETTINGS, state, seen(now=200.0, healthy=False))
    _, restart = decide(SETTINGS, state, seen(now=260.0, healthy=False))
    assert restart == Restart(4, "the head's /health failed for 60s")


def test_a_head_restarted_behind_our_back_is_noticed_by_its_start_time():
    _, restart = decide(SETTINGS, SERVING, seen(start=1234.0))
    assert restart == Restart(4, "the head's vllm restarted (process_start_time_seconds changed)")


def test_requests_that_stop_generating_restart_the_group_after_stall_seconds():
    # /health stays 200 throughout: only the token counter shows the hang.
    state, restart = decide(SETTINGS, SERVING, seen(now=100.0, running=2, tokens=5000))
    assert restart is None
    state, restart = decide(SETTINGS, state, seen(now=399.0, running=2, tokens=5000))
    assert restart is None
    _, restart = decide(SETTINGS, state, seen(now=400.0, running=2, tokens=5000))
    # Only a suspicion: vllm can leave the gauge stale after aborted requests (vllm #22545).
    assert restart == Restart(4, "2 request(s) running but no token generated for 300s (stallSeconds)", confirm=True)


def test_generating_or_idle_is_progress():
    state, _ = decide(SETTINGS, SERVING, seen(now=100.0, running=2, tokens=5000))
    # Tokens advance: the clock starts again.
    state, restart = decide(SETTINGS, state, seen(now=350.0, running=2, tokens=5001))
    assert restart is None
    state, restart = decide(SETTINGS, state, seen(now=600.0, running=2, tokens=5001))
    assert restart is None
    # Nothing running: a quiet counter is no stall, however long.
    state, restart = decide(SETTINGS, state, seen(now=2000.0, running=0, tokens=5001))
    assert restart is None
    _, restart = decide(SETTINGS, state, seen(now=2299.0, running=1, tokens=5001))
    assert restart is None
    # A head whose /metrics has no such series (or cannot be read) is not judged by them.
    assert decide(SETTINGS, SERVING, seen(now=9999.0, running=None, tokens=None))[1] is None


def test_progress_is_never_judged_during_the_initial_load_or_across_a_failing_health():
    starting = State(gen=0, started_at=0.0)
    for now in (10.0, 400.0, 1000.0, 3000.0):
        starting, restart = decide(
            SETTINGS, starting, seen(now=now, healthy=False, start=None, running=4, tokens=0, peer=Peer(0, "", "x"))
        )
        assert restart is None, now
    # The first healthy poll after a failing one starts the clock afresh.
    state, _ = decide(SETTINGS, SERVING, seen(now=100.0, running=2, tokens=5000))
    state, _ = decide(SETTINGS, state, seen(now=150.0, healthy=False, running=None, tokens=None))
    state, restart = decide(SETTINGS, state, seen(now=410.0, running=2, tokens=5000))
    assert restart is None and state.progress_at == 410.0


def test_the_head_metrics_are_summed_over_engines():
    text = (
        '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0",model_name="m"} 2.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 1.0\nvllm:generation_tokens_total 7.0\n'
        "process_start_time_seconds 1.7e9\n"
    )
    assert (sum_of(text, "vllm:num_requests_running"), sum_of(text, "vllm:generation_tokens_total")) == (3.0, 7.0)
    assert sum_of(text, "process_start_time_seconds") == 1.7e9
    assert sum_of(text, "vllm:num_requests_waiting") is None


def test_serving_resets_the_restarts_in_a_row():
    state = replace(SERVING, served=False, consecutive=3, phase="starting", head_start_time=None)
    state, restart = decide(SETTINGS, state, seen(start=555.0))
    assert restart is None
    assert (state.consecutive, state.served, state.phase, state.head_start_time) == (0, True, "serving", 555.0)


def test_restarts_back_off_and_give_up_at_the_cap():
    assert [backoff(SETTINGS, n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 320, 600, 600]
    state = SERVING
    for n in range(1, 6):
        state = begin_restart(SETTINGS, state, Restart(state.gen + 1, "vllm exited with status 1"), {})
        assert (state.consecutive, state.capped, state.phase) == (n, False, "stopping")
    state = begin_restart(SETTINGS, state, Restart(state.gen + 1, "vllm exited with status 1"), {})
    # Published as capped only once its vllm has stopped: a peer's barrier must not open before.
    assert (state.consecutive, state.restarts, state.capped, state.phase) == (6, 8, True, "stopping")
    # Capped: nothing more, whatever happens.
    assert decide(SETTINGS, state, seen(exit=1, peer=Peer(99, "x", "stopping"))) == (state, None)


def test_the_barrier_waits_for_every_peer_to_stop_its_old_vllm():
    assert barrier(4, {"a2-0": Peer(3, "", "serving")}, 5, 120) == (False, ["a2-0"])
    assert barrier(4, {"a2-0": Peer(4, "", "stopping")}, 5, 120) == (False, ["a2-0"])
    assert barrier(4, {"a2-0": Peer(4, "", "waiting")}, 5, 120) == (True, [])
    assert barrier(4, {"a2-0": Peer(5, "", "starting")}, 5, 120) == (True, [])
    # One that answers but is slow to stop is waited for at most the timeout, and named.
    assert barrier(4, {"a2-0": Peer(4, "", "stopping")}, 120, 120) == (True, ["a2-0"])


def test_an_absent_or_capped_peer_holds_the_barrier_without_a_timeout():
    # A group cannot form without it: starting anyway would only burn restarts toward the cap.
    assert barrier(4, {"a2-0": None}, 10**6, 120) == (False, ["a2-0"])
    assert barrier(4, {"a2-0": Peer(4, "", "capped")}, 10**6, 120) == (False, ["a2-0"])
    peers = {"a2-0": None, "a2-2": Peer(4, "", "waiting"), "a2-3": Peer(3, "", "serving")}
    assert barrier(4, peers, 10**6, 120) == (False, ["a2-0"])


def test_a_fresh_container_joins_a_restarted_one_restarts_the_group():
    assert on_start(None, {"a2-0": Peer(7, "x", "serving")}) == (State(gen=7), None)
    assert on_start(None, {"a2-0": None}) == (State(gen=0), None)
    assert on_start(SERVING, {"a2-0": Peer(3, "x", "serving")})[1] == Restart(
        4, "this container restarted (node reboot, or its supervisor died)"
    )
    # A state file lost (empty after a power loss, corrupt) is a restart, not a crash loop.
    assert on_start(None, {"a2-0": Peer(3, "x", "serving")}, lost="JSONDecodeError: Expecting value")[1] == Restart(
        4, "this container restarted (its state file is unreadable: JSONDecodeError: Expecting value)"
    )
    # The peer already restarted the group since (it saw this node go): follow it, once.
    assert on_start(SERVING, {"a2-0": Peer(4, "vllm exited with status 1", "waiting")})[1] == Restart(
        4, "node a2-0 restarted the group: vllm exited with status 1"
    )


def test_metrics_keep_the_contract_names():
    text = metrics_text(replace(SERVING, capped=True), vllm_up=True, head_healthy=False)
    for line in (
        "# TYPE deepseek_supervisor_group_restarts_total counter",
        "deepseek_supervisor_group_restarts_total 2",
        "deepseek_supervisor_vllm_up 1",
        "deepseek_supervisor_restart_capped 1",
        "deepseek_supervisor_head_healthy 0",
        "deepseek_supervisor_group_served 1",
    ):
        assert line in text.splitlines()


GROUP = SETTINGS.group


@pytest.mark.parametrize(
    "answer",
    [
        '{"group": "f00d", "gen": "4", "reason": "x", "phase": "stopping", "consecutive": 0}',
        '{"group": "f00d", "gen": Infinity, "reason": "x", "phase": "stopping", "consecutive": 0}',
        '{"group": "f00d", "gen": 4.0, "reason": "x", "phase": "stopping", "consecutive": 0}',
        '{"group": "f00d", "gen": true, "reason": "x", "phase": "stopping", "consecutive": 0}',
        '{"group": "f00d", "gen": -1, "reason": "x", "phase": "stopping", "consecutive": 0}',
        '{"group": "f00d", "gen": 4294967296, "reason": "x", "phase": "stopping", "consecutive": 0}',
        '{"group": "f00d", "gen": 4, "reason": "x", "phase": "rebooting", "consecutive": 0}',
        '{"group": "f00d", "gen": 4, "reason": ["x"], "phase": "stopping", "consecutive": 0}',
        '{"group": "f00d", "gen": 4, "reason": "x", "phase": "stopping"}',
        '{"group": "0ld0", "gen": 4, "reason": "x", "phase": "stopping", "consecutive": 0}',
        '{"gen": 4, "reason": "x", "phase": "stopping", "consecutive": 0}',
        "[4]",
        "<html>gateway timeout</html>",
        "",
    ],
)
def test_a_peer_answer_that_is_not_this_groups_supervisor_counts_as_no_answer(answer):
    peer = parse_peer(answer, GROUP)
    assert peer is None
    # So it commands nothing: no restart, and no crash of PID 1 on a type it did not expect.
    assert decide(SETTINGS, SERVING, seen(peer=peer))[1] is None


def test_a_valid_peer_answer_is_read_with_its_reason_cut_short():
    body = '{"group": "f00d", "gen": 4, "reason": "' + "r" * 500 + '", "phase": "stopping", "consecutive": 2}'
    assert parse_peer(body, GROUP) == Peer(4, "r" * 200, "stopping", 2)


def test_a_healthy_head_counts_as_served_only_with_this_nodes_generation():
    restarted = replace(SERVING, gen=4, served=False, consecutive=2, phase="starting", head_start_time=None)
    # The peer's supervisor cannot be reached (its metrics port blocked): nothing proves that
    # this node's vllm is part of the group the head serves, so the count does not reset.
    state, restart = decide(SETTINGS, restarted, seen(peer=None))
    assert restart is None and (state.served, state.consecutive) == (False, 2)
    # Nor with the peer still on the old generation.
    state, restart = decide(SETTINGS, restarted, seen(peer=PEER_SERVING))
    assert restart is None and (state.served, state.consecutive) == (False, 2)
    # The head healthy, and nothing judged against it meanwhile, however long: never a restart.
    assert decide(SETTINGS, restarted, seen(now=10**6, peer=None))[1] is None
    state, _ = decide(SETTINGS, restarted, seen(peer=Peer(4, "x", "starting")))
    assert (state.served, state.consecutive, state.phase) == (True, 0, "serving")


def test_following_a_peer_takes_its_count_so_backoffs_and_caps_agree():
    peers = {"a2-0": Peer(4, "vllm exited with status 1", "stopping", consecutive=3)}
    state = begin_restart(SETTINGS, SERVING, Restart(4, "node a2-0 restarted the group"), peers)
    assert (state.consecutive, backoff(SETTINGS, state.consecutive)) == (3, 40)
    # A peer's count from another generation says nothing about this restart.
    older = {"a2-0": Peer(3, "x", "serving", consecutive=5)}
    assert begin_restart(SETTINGS, SERVING, Restart(4, "vllm exited with status 1"), older).consecutive == 1


def test_the_saved_state_holds_only_what_a_restarted_container_needs():
    saved = durable(replace(SERVING, progress_at=12.5, tokens=7.0, unhealthy_since=3.0, served=True))
    assert saved == {
        "gen": 3,
        "reason": "first start",
        "phase": "serving",
        "consecutive": 0,
        "restarts": 2,
        "capped": False,
    }
    assert load_state(json.dumps(saved)) == State(gen=3, phase="serving", restarts=2)
    for text in ("", "{", "[]", '{"gen": 1}', json.dumps({**saved, "gen": "3"}), json.dumps({**saved, "phase": "?"})):
        with pytest.raises((ValueError, TypeError)):
            load_state(text)


def test_metrics_say_which_peers_answer():
    text = metrics_text(SERVING, vllm_up=True, head_healthy=True, peers_up={"a2-0": False})
    assert 'deepseek_supervisor_peer_up{peer="a2-0"} 0' in text.splitlines()


# One failed transfer as vllm-ascend v0.18.0's decoder logs it (kv_p2p/mooncake_connector.py): its
# own line, then its caller's with the raised error and the traceback.
FAILED_TRANSFER = [
    b"(EngineCore_DP0 pid=412) ERROR 12-01 03:00:01 [mooncake_connector.py:547] Mooncake transfer failed for "
    b"request cmpl-7-0",
    b"(EngineCore_DP0 pid=412) ERROR 12-01 03:00:01 [mooncake_connector.py:441] Failed to transfer KV cache for "
    b"request cmpl-7-0: Mooncake transfer failed, ret: -1",
    b"Traceback (most recent call last):",
    b'  File "/vllm-workspace/vllm-ascend/vllm_ascend/distributed/kv_transfer/kv_p2p/mooncake_connector.py", '
    b"line 438, in _handle_request",
    b"RuntimeError: Mooncake transfer failed, ret: -1",
]


def test_a_failed_kv_transfer_counts_once_however_many_lines_it_logs():
    assert [kv_transfer_failed(line) for line in FAILED_TRANSFER] == [True, False, False, False, False]


@pytest.mark.parametrize(
    "line",
    [
        # The caller's line for another error: the request decodes without its KV all the same.
        b"ERROR [mooncake_connector.py:441] Failed to transfer KV cache for request cmpl-8-0: timed out",
        # The layerwise connector, on the prefill side, and a link that cannot be made.
        b"ERROR [mooncake_layerwise_connector.py:482] Mooncake transfer failed for send requests ['r1'] kv cache",
        b"ERROR [mooncake_layerwise_connector.py:1748] Mooncake transfer failed to create link to device 10.0.0.2",
    ],
)
def test_other_failed_transfers_count(line):
    assert kv_transfer_failed(line)


@pytest.mark.parametrize(
    "line",
    [
        b"INFO [mooncake_connector.py:560] KV cache transfer for request cmpl-7-0 took 2.02 ms",
        b"INFO 12-01 03:00:00 [loggers.py:123] Engine 000: Avg prompt throughput: 12.0 tokens/s",
        b"\xff\xfe\x00\x1b[2K garbage",
        b"",
    ],
)
def test_the_rest_of_the_log_counts_nothing(line):
    assert not kv_transfer_failed(line)


def test_the_log_is_scanned_line_by_line_however_it_is_cut():
    log = b"\n".join([b"INFO starting", *FAILED_TRANSFER, b"INFO serving", FAILED_TRANSFER[0], b""])
    for size in (1, 7, 64, len(log)):
        head, total = b"", 0
        for at in range(0, len(log), size):
            head, found = scan_log(head, log[at : at + size])
            total += found
        assert (head, total) == (b"", 2)
    # A line not ended yet is judged once it ends (or once vllm's pipe closes).
    assert scan_log(b"", FAILED_TRANSFER[0]) == (FAILED_TRANSFER[0], 0)


def test_a_line_without_end_keeps_only_its_head():
    head, found = scan_log(b"", b"\xff" * 10_000_000)
    assert (len(head), found) == (4096, 0)
    head, found = scan_log(head, b" Mooncake transfer failed for request r\n")
    assert (head, found) == (b"", 0)
    assert scan_log(b"", b"x" * 4000 + b" Mooncake transfer failed for request r\n")[1] == 1


def test_metrics_count_failed_kv_transfers():
    lines = metrics_text(SERVING, vllm_up=True, head_healthy=True, kv_failures=3).splitlines()
    assert "# TYPE deepseek_supervisor_kv_transfer_failures_total counter" in lines
    assert "deepseek_supervisor_kv_transfer_failures_total 3" in lines


@pytest.fixture
def a2_raw():
    return {
        "profile": "atlas-800-a2",
        "nodes": [
            {"name": "a2-0", "ip": "192.0.2.11", "nic": "eth0"},
            {"name": "a2-1", "ip": "192.0.2.12", "nic": "eth0"},
        ],
    }


def test_the_plan_places_the_supervisor_in_front_of_the_unchanged_argv(a2_raw):
    plan = plan_cluster(load_config(a2_raw), "a2")
    worker = plan.nodes[1]
    assert worker.entrypoint == (SUPERVISOR_PATH,)
    assert worker.argv[:2] == ("vllm", "serve")
    assert worker.supervisor_url == "http://192.0.2.12:9401"
    settings = Settings.from_json(worker.uploads[-1].content)
    assert settings == replace(SETTINGS, poll_seconds=2, group=plan.group_fingerprint)
    # The launcher runs the package placed beside it; the settings come last.
    assert [(u.path, u.executable) for u in worker.uploads] == [
        ("/opt/deepseek-r1-ascend/supervise", True),
        ("/opt/deepseek-r1-ascend/supervision/protocol.py", False),
        ("/opt/deepseek-r1-ascend/supervision/supervisor.py", False),
        (SETTINGS_FILE, False),
    ]


def test_the_group_epoch_replaces_the_whole_group(a2_raw):
    before = plan_cluster(load_config(a2_raw), "a2")
    after = plan_cluster(load_config({**a2_raw, "supervision": {"groupEpoch": 1}}), "a2")
    assert before.group_fingerprint != after.group_fingerprint
    assert [n.argv for n in before.nodes] == [n.argv for n in after.nodes]
    assert json.loads(after.nodes[0].uploads[-1].content)["group_epoch"] == 1


def test_without_supervision_the_container_runs_vllm_itself(a2_raw):
    plan = plan_cluster(load_config({**a2_raw, "supervision": {"enabled": False}}), "a2")
    assert [(n.entrypoint, n.uploads, n.supervisor_url) for n in plan.nodes] == [((), (), None)] * 2


def test_the_metrics_port_must_be_its_own(a2_raw):
    from core.config import ConfigError

    with pytest.raises(ConfigError) as error:
        load_config({**a2_raw, "supervision": {"metricsPort": 8000}})
    assert str(error.value).endswith(
        "supervision.metricsPort: 8000 is also serve.port; the supervisor needs a port of its own on every node"
    )


def test_stall_seconds_is_a_positive_whole_number(a2_raw):
    from core.config import ConfigError

    assert json.loads(plan_cluster(load_config(a2_raw), "a2").nodes[0].uploads[-1].content)["stall_seconds"] == 300
    with pytest.raises(ConfigError) as error:
        load_config({**a2_raw, "supervision": {"stallSeconds": 0}})
    assert str(error.value).endswith("supervision.stallSeconds: got 0; input should be greater than or equal to 1")


def test_every_container_runs_the_supervisor_in_front_of_vllm_serve():
    a2 = run_program(stack_settings("a2"), stack="a2")
    for name, peer in (("a2-0", "a2-1"), ("a2-1", "a2-0")):
        inputs = a2.named(f"{name}-vllm").inputs
        assert inputs["entrypoints"] == [SUPERVISOR_PATH]
        assert inputs["command"][:2] == ["vllm", "serve"]
        uploads = {u["file"]: u for u in inputs["uploads"]}
        assert uploads[SUPERVISOR_PATH]["executable"] is True
        settings = json.loads(uploads["/opt/deepseek-r1-ascend/supervision.json"]["content"])
        assert (settings["node"], list(settings["peers"])) == (name, [peer])


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"serve": {"host": "127.0.0.1"}},
            "serve.host: vllm would listen on 127.0.0.1 only, where the other nodes' supervisors cannot watch the "
            "head; leave serve.host unset (the head's own address 192.0.2.11, behind the front door), or use "
            '"0.0.0.0" (or "::")',
        ),
        (
            {
                "nodes": [
                    {"name": "a2-0", "ip": "2001:db8::11", "nic": "eth0"},
                    {"name": "a2-1", "ip": "2001:db8::12", "nic": "eth0"},
                ],
                "serve": {"host": "0.0.0.0"},
            },
            "serve.host: 0.0.0.0 listens on IPv4 only, but the nodes' addresses are IPv6; the other nodes' supervisors watch the head at 2001:db8::11: use \"::\"",
        ),
        (
            {"container": {"stopGraceSeconds": 30}},
            "container.stopGraceSeconds: 30s leaves the supervisor no time to stop vllm (supervision.stopTimeoutSeconds is 30s); use more than 30",
        ),
    ],
)
def test_settings_under_which_the_supervisors_cannot_watch_or_stop_vllm_are_refused(a2_raw, changes, problem):
    from core.config import ConfigError

    with pytest.raises(ConfigError) as error:
        load_config({**a2_raw, **changes})
    assert problem in str(error.value).splitlines()[-1]


@pytest.mark.parametrize("host", ["192.0.2.11", "::"])
def test_the_head_is_watched_where_vllm_listens(a2_raw, host):
    plan = plan_cluster(load_config({**a2_raw, "serve": {"host": host}}), "a2")
    head, other = (Settings.from_json(n.uploads[-1].content) for n in plan.nodes)
    assert head.head_url == f"http://{plan.listen_host}:8000"
    assert other.head_url == "http://192.0.2.11:8000"


def test_without_supervision_vllm_may_listen_anywhere(a2_raw):
    assert load_config({**a2_raw, "serve": {"host": "127.0.0.1"}, "supervision": {"enabled": False}})


def test_a_single_node_watches_its_own_vllm_wherever_it_listens():
    raw = {
        "profile": "atlas-800-a3",
        "nodes": [{"name": "a3", "ip": "192.0.2.20", "nic": "eth0"}],
        "serve": {"host": "127.0.0.1"},
    }
    plan = plan_cluster(load_config(raw), "a3")
    assert Settings.from_json(plan.nodes[0].uploads[-1].content).head_url == "http://127.0.0.1:8000"


def test_a_kv_transferring_instance_gets_what_the_image_sets_only_in_an_interactive_shell():
    from supervision.protocol import interactive_env

    image = {"LD_LIBRARY_PATH": "/usr/local/Ascend/driver/lib64:/usr/local/python3.11/lib", "LD_PRELOAD": ""}
    assert interactive_env(image, "aarch64") == {
        "LD_PRELOAD": "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
        "LD_LIBRARY_PATH": "/usr/local/Ascend/driver/lib64:/usr/local/python3.11/lib:/usr/local/lib",
    }
    assert interactive_env({"LD_PRELOAD": "/x.so"}, "x86_64")["LD_PRELOAD"] == (
        "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2:/x.so"
    )
