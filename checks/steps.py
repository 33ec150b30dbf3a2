"""Every step the deployment runs on its nodes, by name: the script a node runs and the one judge
of what it printed.

A step's spec is plain JSON (it is part of the resource's command line, so a diff shows it). The
judge returns the report the program reads (driver version, NIC, NPU IPs, verification figures),
or raises `StepFailed` with the one-line message the user sees, way forward included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass

from core.models import Accuracy, Benchmark

from . import (
    board,
    compat,
    devices,
    disk,
    docker,
    driver_files,
    group_view,
    hccn,
    image,
    kv_ports,
    membership,
    mooncake,
    nic,
    npu_holders,
    npu_smi,
    ping,
    servicechecks,
)
from .common import CheckResult, quote

# The runner's environment (see __main__): each node's SSH connection, and the key to log in with.
NODE_SSH_ENV = "NODE_SSH"
SSH_KEY_ENV = "SSH_PRIVATE_KEY"

RERUN = "run `pulumi up` again (a failed check is not saved, so it runs again)"
RETRY = f"fix the node and {RERUN}"

# Steps of the whole group that reach no node: the NPU addresses of every node, read by every
# node's pings; and the one step every container waits for, after every check of every node.
NPU_IPS = "npu-ips"
CHECKS_PASSED = "checks-passed"


class StepFailed(Exception):
    """The step ran and its output shows a problem; the message is all the user needs."""


@dataclass(frozen=True)
class Step:
    script: Callable[[dict], str]
    # Node name -> what that node printed; most steps run on one node.
    judge: Callable[[dict, dict[str, str]], dict]


def _verdict(result: CheckResult, report: dict | None = None) -> dict:
    if not result.ok:
        # A judge that knows the way forward names it; the retry applies to every check.
        fix = result.detail.get("fix")
        raise StepFailed(f"{result.message}; {f'{fix}, then {RERUN}' if fix else RETRY}")
    return {"seen": result.seen, **(report or {})}


def _judged(judge: Callable[..., dict], *args) -> dict:
    """A judge that raises ValueError with the user's message: a failed step, retried by `pulumi up`."""
    try:
        return judge(*args)
    except ValueError as e:
        raise StepFailed(f"{e}; {RERUN}") from None


def _one(outputs: dict[str, str]) -> str:
    (output,) = outputs.values()
    return output


_HOLDERS_MARK = f"=== {npu_holders.CHECK}"


def _npu_idle(spec: dict, outputs: dict[str, str]) -> dict:
    # Processes on the NPUs are foreign (e.g. a vllm outside Docker) unless this stack's own
    # container runs there, as it does while it gets replaced.
    smi, _, holders = _one(outputs).partition(_HOLDERS_MARK + "\n")
    own = npu_holders.judge_npu_holders(spec["node"], holders, spec["stack"]).detail.get("own")
    if own:
        return {"seen": f"this stack's container {', '.join(own)} holds the NPUs"}
    return _verdict(npu_smi.judge_npu_smi(spec["node"], smi, spec["npus"])[1])


def _kv_ports(spec: dict, outputs: dict[str, str]) -> dict:
    # As for the NPUs: while this stack's own container runs there (it is being replaced), its
    # own vllm holds the KV ports.
    ports, _, holders = _one(outputs).partition(_HOLDERS_MARK + "\n")
    own = npu_holders.judge_npu_holders(spec["node"], holders, spec["stack"]).detail.get("own")
    if own:
        return {"seen": f"this stack's container {', '.join(own)} holds the KV ports"}
    return _verdict(kv_ports.judge_kv_ports(spec["node"], ports, spec["ranges"]))


def _driver_files(spec: dict, outputs: dict[str, str]) -> dict:
    result = driver_files.judge_driver_files(spec["node"], _one(outputs), spec["paths"], spec["versionFile"])
    return _verdict(result, {"version": result.detail.get("version") or "unknown"})


def _npu_board(spec: dict, outputs: dict[str, str]) -> dict:
    table = compat.load(spec["overrides"])
    result = board.judge_npu_board(
        spec["node"], _one(outputs), spec["profile"], spec["npuIds"], spec["hbmGbNeeded"], spec["hbmReason"], table
    )
    return _verdict(result, {k: result.detail.get(k) for k in ("soc", "firmware", "hbmGbPerNpu", "warnings")})


def _image_host(spec: dict, outputs: dict[str, str]) -> dict:
    table = compat.load(spec["overrides"])
    result = image.judge_image_host(spec["node"], _one(outputs), spec["image"], spec["profile"], table)
    return _verdict(result, {k: result.detail.get(k) for k in ("cann", "soc", "driver", "warnings")})


def _nic_ip(spec: dict, outputs: dict[str, str]) -> dict:
    name, ip, output = spec["node"], spec["ip"], _one(outputs)
    found = spec["nic"]
    if found == spec["auto"]:
        try:
            found = nic.discover_nic(output, ip)
        except nic.NicDiscoveryError as error:
            _verdict(CheckResult(name, nic.CHECK, False, f"one interface holding {ip}", str(error)))
    return _verdict(nic.judge_nic_ip(name, output, found, ip), {"nic": found})


def _npu_network(spec: dict, outputs: dict[str, str]) -> dict:
    output = _one(outputs)
    report = _verdict(hccn.judge_npu_network(spec["node"], output, spec["npus"]))
    parsed = hccn.parse_hccn(output) or {}
    return report | {"npuIps": {str(i): n.ipaddr for i, n in sorted(parsed.items()) if n.ipaddr}}


def _npu_tls(spec: dict, outputs: dict[str, str]) -> dict:
    # Judged across the nodes queried just now, so fixing either side clears the failure.
    ordered = {node: outputs[node] for node in spec["nodes"]}
    result = next(r for r in hccn.judge_tls_consistency(ordered) if r.node == spec["node"])
    return _verdict(result)


def _ping_targets(spec: dict) -> list[ping.PingTarget]:
    return [ping.PingTarget(*t) for t in spec["targets"]]


def _service(parse: Callable[[str], object], way_forward: str) -> Callable[[dict, dict[str, str]], dict]:
    def judge(spec: dict, outputs: dict[str, str]) -> dict:
        try:
            result = parse(_one(outputs))
        except servicechecks.ServiceCheckFailed as error:
            first, _, rest = str(error).partition("\n")
            raise StepFailed(f"{first}; {way_forward}" + (f"\n{rest}" if rest else "")) from None
        return {"result": asdict(result) if is_dataclass(result) else result}

    return judge


def _staged(output: str) -> str:
    last = (output.strip().splitlines() or [""])[-1]
    if not last.startswith(("staged: ", "already staged: ")):
        raise servicechecks.ServiceCheckFailed(f"weights staging: the download did not finish: {output[-300:]!r}")
    return last


AGAIN = "run `pulumi up` again once fixed"


# Written into a directory the owned-dir step created, before handing it over: proof, on a rerun
# after an interrupted one, that the root-owned empty directory is the step's own.
OWNED_DIR_MARKER = ".deepseek-r1-ascend-owned-dir"
_REFUSED = "refused: "


def _owned_dir_script(spec: dict) -> str:
    """Create the directory and give it to `owner`, or refuse: the step never hands over a
    directory it did not create. It passes again (idempotent) when the directory is already the
    owner's, and finishes an interrupted run when the directory is its own: owned by the user the
    step runs as and holding nothing but the marker. Anything else that exists is refused: a
    symbolic link, a file, anyone else's directory, an empty one the step did not write."""
    path, owner, marker = quote(spec["path"]), int(spec["owner"]), quote(OWNED_DIR_MARKER)
    note = quote(f"created by the deepseek-r1-ascend owned-dir step for uid {owner}")
    lines = [
        f"p={path}; o={owner}; m={marker}",
        "uid() { ls -ldn -- \"$p\" | awk '{ print $3 }'; }",
        f'if [ -L "$p" ]; then echo "{_REFUSED}it is a symbolic link"',
        'elif [ ! -e "$p" ]; then',
        '  mkdir -p -- "$(dirname -- "$p")" && mkdir -- "$p" && echo ' + note + ' > "$p/$m" &&',
        '  chown -h -- "$o:$o" "$p" && echo ready',
        f'elif [ ! -d "$p" ]; then echo "{_REFUSED}it exists and is not a directory"',
        'elif [ "$(uid)" = "$o" ]; then echo ready',
        'elif [ "$(uid)" = "$(id -u)" ] && [ "$(ls -A -- "$p")" = "$m" ]; then chown -h -- "$o:$o" "$p" && echo ready',
        f'else echo "{_REFUSED}it already exists, owned by uid $(uid), and this step did not create it"',
        "fi",
    ]
    return "{ " + "\n".join(lines) + "\n} 2>&1"


def _owned_dir(spec: dict, outputs: dict[str, str]) -> dict:
    output = _one(outputs).strip()
    last = output.splitlines()[-1] if output else ""
    if last == "ready":
        return {"path": spec["path"]}
    node, path, owner = spec["node"], spec["path"], spec["owner"]
    if last.startswith(_REFUSED):
        raise StepFailed(
            f"node {node}: will not make {path} uid {owner}'s: {last.removeprefix(_REFUSED)}; this step only "
            f"hands over a directory it creates itself: name a path that does not exist yet, or, if this "
            f"directory is meant for it, run `chown {owner}:{owner} {quote(path)}` on the node yourself; {AGAIN}"
        )
    seen = " ".join(output.split())[:200] or "no output"
    raise StepFailed(f"node {node}: cannot create {path} owned by {owner}: {seen}; {AGAIN}")


STEPS: dict[str, Step] = {
    npu_smi.HEALTH_CHECK: Step(
        lambda s: npu_smi.npu_smi_command(),
        lambda s, out: _verdict(npu_smi.judge_npu_smi(s["node"], _one(out), s["npus"])[0]),
    ),
    npu_smi.IDLE_CHECK: Step(
        lambda s: f"{npu_smi.npu_smi_command()}; echo '{_HOLDERS_MARK}'; {npu_holders.npu_holders_command(s['label'])}",
        _npu_idle,
    ),
    devices.CHECK: Step(
        lambda s: devices.dev_list_command(s["devDir"]),
        lambda s, out: _verdict(devices.judge_dev_davinci(s["node"], _one(out), s["npus"])),
    ),
    driver_files.CHECK: Step(lambda s: driver_files.driver_files_command(s["paths"], s["versionFile"]), _driver_files),
    board.CHECK: Step(lambda s: board.board_command(s["npuIds"]), _npu_board),
    image.CHECK: Step(lambda s: image.image_host_command(s["imageId"], s["versionFile"]), _image_host),
    # PD nodes only: the KV port ranges their engines bind, and Mooncake in their pulled image.
    kv_ports.CHECK: Step(
        lambda s: (
            f"{kv_ports.kv_ports_command()}; echo '{_HOLDERS_MARK}'; {npu_holders.npu_holders_command(s['label'])}"
        ),
        _kv_ports,
    ),
    mooncake.CHECK: Step(
        lambda s: mooncake.mooncake_command(s["imageId"]),
        lambda s, out: _verdict(mooncake.judge_mooncake(s["node"], _one(out), s["image"])),
    ),
    docker.CHECK: Step(
        lambda s: docker.docker_version_command(),
        lambda s, out: _verdict(docker.judge_docker(s["node"], _one(out))),
    ),
    npu_holders.CHECK: Step(
        lambda s: npu_holders.npu_holders_command(s["label"]),
        lambda s, out: _verdict(npu_holders.judge_npu_holders(s["node"], _one(out), s["stack"])),
    ),
    disk.CHECK: Step(
        lambda s: disk.df_command(s["path"]),
        lambda s, out: _verdict(disk.judge_free_space(s["node"], _one(out), s["path"], s["minFreeGib"])),
    ),
    nic.CHECK: Step(lambda s: nic.ip_addr_command(), _nic_ip),
    hccn.NETWORK_CHECK: Step(lambda s: hccn.hccn_command(s["npus"]), _npu_network),
    hccn.TLS_CHECK: Step(lambda s: hccn.hccn_command(s["npus"]), _npu_tls),
    ping.CHECK: Step(
        lambda s: ping.ping_command(_ping_targets(s)),
        lambda s, out: _verdict(ping.judge_ping(s["node"], _one(out), _ping_targets(s))),
    ),
    "readiness": Step(
        lambda s: servicechecks.readiness_command(
            s["url"], s["servedName"], s["timeoutSeconds"], s["intervalSeconds"], s["container"], s["stack"]
        ),
        _service(servicechecks.ready_after_seconds, f"see the log lines below; {AGAIN}"),
    ),
    group_view.CHECK: Step(
        lambda s: group_view.group_view_command(s["url"], s["waitSeconds"]),
        lambda s, out: _verdict(
            group_view.judge_group_view(s["node"], _one(out), s["head"], s["apiPort"], s["peers"], s["metricsPort"])
        ),
    ),
    "smoke-test": Step(
        lambda s: servicechecks.smoke_command(s["url"], s["request"], s.get("retrySeconds", 0)),
        _service(servicechecks.parse_smoke, AGAIN),
    ),
    "benchmark": Step(
        lambda s: servicechecks.benchmark_command(
            s["container"], s["model"], s["servedName"], s["url"], Benchmark.model_validate(s["settings"]), s["stack"]
        ),
        _service(servicechecks.parse_benchmark, AGAIN),
    ),
    "accuracy": Step(
        lambda s: servicechecks.accuracy_command(
            s["container"], s["servedName"], s["url"], Accuracy.model_validate(s["settings"])
        ),
        _service(servicechecks.parse_accuracy, AGAIN),
    ),
    membership.JOIN: Step(
        lambda s: membership.join_command(
            s["router"], s["worker"], s["servedName"], s["timeoutSeconds"], s["intervalSeconds"]
        ),
        lambda s, out: _judged(membership.judge_join, s["group"], _one(out), s["worker"], s["timeoutSeconds"]),
    ),
    membership.DRAIN: Step(
        lambda s: membership.drain_command(s["router"], s["worker"], s["drainSeconds"]),
        lambda s, out: membership.judge_drain(s["group"], _one(out)),
    ),
    # Nothing to run or judge: the engine starts them once every check they wait for has passed.
    NPU_IPS: Step(lambda s: "", lambda s, out: {"npuIps": s["npuIps"]}),
    CHECKS_PASSED: Step(lambda s: "", lambda s, out: {"checksPassed": s["checks"]}),
    # A directory a container writes as a user of its own (Prometheus's data).
    "owned-dir": Step(_owned_dir_script, _owned_dir),
    "stage-weights": Step(
        lambda s: servicechecks.staging_command(s["image"], s["weightsDir"], s["model"], s["useModelscope"], s["mode"]),
        _service(_staged, f"check the weights directory and the mirror; {AGAIN}"),
    ),
}


def node_script(name: str, spec: dict) -> str:
    """What the step runs on each of its nodes; its secrets come first, read from standard input."""
    script = STEPS[name].script(spec)
    return servicechecks.secrets_prelude(spec["secrets"]) + script if spec.get("secrets") else script
