"""kv-ports: a PD node's KV port ranges against the listening TCP sockets, from `ss -Htlnp` or,
without ss, from /proc/net/tcp and /proc/net/tcp6."""

from __future__ import annotations

import os
import shutil

import pytest
from hoststubs import fixture, run_sh, stub

from checks import kv_ports, npu_holders
from checks.npu_holders import npu_holders_command
from checks.steps import STEPS, StepFailed, node_script

# A3 profile: one prefill engine (DP2 x TP8) and one decode engine's 32 ports, above Mooncake's
# own random range.
RANGES = [[36000, 36015, "prefill-0"], [36100, 36131, "decode-0"]]
EXPECTED = "expected KV ports 36000-36015 (engine prefill-0), 36100-36131 (engine decode-0) free"


def ss(name: str, end: bool = True) -> str:
    return "=== ss\n" + fixture(f"kv_ports/{name}") + ("=== end\n" if end else "")


def proc(name: str) -> str:
    return "=== proc\n" + fixture(f"kv_ports/{name}") + "=== end\n"


def judge(output: str):
    return kv_ports.judge_kv_ports("a3-0", output, RANGES)


# --- the command, under a real sh -----------------------------------------------------------------


def test_the_command_prints_ss_listing_between_its_markers(tmp_path):
    stub(tmp_path / "ss", f'[ "$1" = -Htlnp ] || exit 2\ncat {tmp_path / "listing"}\n')
    (tmp_path / "listing").write_text(fixture("kv_ports/ss_taken.txt"))
    done = run_sh(kv_ports.kv_ports_command(), f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert done.stdout == ss("ss_taken.txt")
    assert [s.port for s in kv_ports.parse_kv_ports(done.stdout).sockets][2:6] == [36000, 36001, 36002, 36003]


@pytest.mark.parametrize("ss_stub", [None, "echo \"ss: invalid option -- 'H'\" >&2\nexit 255\n"])
def test_without_a_working_ss_the_kernels_tables_are_read(tmp_path, ss_stub):
    # Missing, or too old for -H: this machine's own /proc/net/tcp, read with the real cat.
    os.symlink(shutil.which("cat"), tmp_path / "cat")
    if ss_stub:
        stub(tmp_path / "ss", ss_stub)
    done = run_sh(kv_ports.kv_ports_command(), str(tmp_path))
    assert done.stdout.startswith("=== proc\n  sl  local_address")
    parsed = kv_ports.parse_kv_ports(done.stdout)
    assert parsed is not None and not parsed.from_ss


# --- the readers ------------------------------------------------------------------------------


def test_ss_rows_give_ports_and_owners_on_every_address_form():
    parsed = kv_ports.parse_kv_ports(ss("ss_ipv6.txt"))
    assert [(s.port, s.owners) for s in parsed.sockets] == [
        (22, ("sshd (pid 1630)",)),
        (22, ("sshd (pid 1630)",)),
        (36005, ("node_exporter (pid 2288)",)),
        (36110, ("java (pid 9051)",)),
        (36120, ("java (pid 9051)",)),
        (8443, ("nginx (pid 3301)", "nginx (pid 3302)")),
    ]


def test_without_permission_ss_shows_no_owner_for_other_users_sockets():
    parsed = kv_ports.parse_kv_ports(ss("ss_no_permission.txt"))
    assert [(s.port, s.owners) for s in parsed.sockets if s.port in (36002, 8899)] == [
        (36002, ()),
        (8899, ("python3 (pid 7012)",)),
    ]


def test_the_kernels_tables_list_listeners_only():
    parsed = kv_ports.parse_kv_ports(proc("proc_net_tcp.txt"))
    # The established connection on port 22 is no listener; 0x8CA2 and 0x8CA9 are.
    assert [s.port for s in parsed.sockets] == [22, 53, 36002, 22, 36009]
    assert kv_ports.parse_kv_ports(proc("proc_net_tcp_free.txt")).sockets == (kv_ports.Listener(22, ()),)


@pytest.mark.parametrize(
    "output",
    [
        ss("garbage.txt"),
        ss("truncated.txt", end=False),
        ss("ss_free.txt", end=False),
        "=== proc\ncat: /proc/net/tcp: No such file or directory\n=== end\n",
        "=== proc\n" + fixture("kv_ports/proc_net_tcp.txt") + "   7: 0B0200C0:8C\n=== end\n",
        "sh: 1: ss: not found\n",
    ],
)
def test_garbage_and_output_cut_before_its_end_are_unparseable(output):
    assert kv_ports.parse_kv_ports(output) is None
    result = judge(output)
    assert not result.ok and result.seen.startswith("unparseable output: ")


def test_empty_output_says_so():
    assert judge("").seen == "empty output"


# --- the judgement ----------------------------------------------------------------------------


@pytest.mark.parametrize("output", [ss("ss_free.txt"), proc("proc_net_tcp_free.txt"), "=== ss\n=== end\n"])
def test_free_ranges_pass(output):
    result = judge(output)
    assert result.ok and result.seen.startswith("all free")


def test_a_taken_range_names_the_ports_the_process_and_the_engine():
    result = judge(ss("ss_taken.txt"))
    assert result.message == (
        f"node a3-0: check kv-ports: {EXPECTED}, saw ports 36000-36003 taken by python3 (pid 4121), "
        "in engine prefill-0's range 36000-36015"
    )
    assert result.detail["fix"] == "stop python3 (pid 4121), or move the KV port ranges with `pd.kvPortBase`"


def test_listeners_on_ipv6_wildcard_and_mapped_addresses_take_the_port():
    result = judge(ss("ss_ipv6.txt"))
    assert result.seen == (
        "port 36005 taken by node_exporter (pid 2288), in engine prefill-0's range 36000-36015; "
        "ports 36110,36120 taken by java (pid 9051), in engine decode-0's range 36100-36131"
    )
    assert result.detail["fix"].startswith("stop node_exporter (pid 2288) and java (pid 9051), or move")


def test_an_owner_ss_does_not_show_is_said_and_found_another_way():
    result = judge(ss("ss_no_permission.txt"))
    assert result.seen == (
        "port 36002 taken by a process ss names only to root, in engine prefill-0's range 36000-36015"
    )
    assert result.detail["fix"].startswith("stop what listens on 36002 (`ss -tlnp` as root names it), or move")


def test_the_kernels_tables_name_no_owner():
    result = judge(proc("proc_net_tcp.txt"))
    assert result.seen == (
        "ports 36002,36009 taken by a process (no ss to name it), in engine prefill-0's range 36000-36015"
    )


# What the step prints between the listeners and the running containers (checks/steps.py).
HOLDERS = f"=== {npu_holders.CHECK}"


def test_the_step_fails_with_one_line_and_the_way_forward():
    spec = {"node": "a3-0", "ranges": RANGES, "label": "deepseek-r1-ascend.stack", "stack": "a3-pd"}
    none_of_ours = f"{HOLDERS}\n"
    with pytest.raises(StepFailed) as failed:
        STEPS["kv-ports"].judge(spec, {"a3-0": ss("ss_taken.txt") + none_of_ours})
    message = str(failed.value)
    assert "\n" not in message and message.startswith("node a3-0: check kv-ports: expected KV ports 36000-36015")
    assert message.endswith(
        "stop python3 (pid 4121), or move the KV port ranges with `pd.kvPortBase`, "
        "then run `pulumi up` again (a failed check is not saved, so it runs again)"
    )
    free = STEPS["kv-ports"].judge(spec, {"a3-0": ss("ss_free.txt") + none_of_ours})
    assert free["seen"] == "all free (9 listeners elsewhere)"
    script = node_script("kv-ports", spec)
    assert script.startswith(kv_ports.kv_ports_command()) and script.endswith(npu_holders_command(spec["label"]))


def test_the_stacks_own_container_holds_its_kv_ports_while_it_is_replaced():
    spec = {"node": "a3-0", "ranges": RANGES, "label": "deepseek-r1-ascend.stack", "stack": "a3-pd"}
    own = f"{HOLDERS}\n=== container /vllm-ascend stack=a3-pd /dev/davinci0 /dev/davinci1\n"
    report = STEPS["kv-ports"].judge(spec, {"a3-0": ss("ss_taken.txt") + own})
    assert report["seen"] == "this stack's container vllm-ascend holds the KV ports"
