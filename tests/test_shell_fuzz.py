"""No code in data: shell metacharacters in every string key of the stack are either refused by
validation, or reach the scripts a person runs as inert data.

For every string key (every node field of the head and of a headless node, every section,
every named secret) and every payload below (as the whole value, after the key's valid value,
and after it on a line of its own), either `load_config` refuses the stack, or these scripts run
under /bin/sh with stub tools and create no marker file:
- the dry run's per-node and observability scripts (`core.render`, as `python -m ops.render`
  prints them),
- the diagnostics collection on every node (`checks.diagnostics`, as `python -m ops.diagnose`
  runs it),
- the `smokeTest` output, with and without the API key (piped to `sh`, as the README says).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import typing
from dataclasses import replace
from pathlib import Path

import pytest
from hoststubs import stub
from mocked import stack_settings
from pydantic import BaseModel

from checks.diagnostics import collect_command
from core.config import SECRET_KEYS, ConfigError, load_config
from core.deployment import plan_deployment
from core.models import ClusterConfig, Node
from core.render import node_script, sidecar_script

MARKER = "pwned"
PAYLOADS = (
    f"$(touch {MARKER}-1)",
    f"`touch {MARKER}-2`",
    f"x;touch {MARKER}-3",
    f"x|touch {MARKER}-4",
    f"x\ntouch {MARKER}-5\n",
    f"x'\"$(touch {MARKER}-6)\"'",
    f'x"; touch {MARKER}-7; "',
    f"x&touch {MARKER}-8&",
    f"$(touch${{IFS}}{MARKER}-9)",
    f"x'; touch {MARKER}-10; '",
    f"x\rtouch {MARKER}-11",
    f"x$IFS&&touch$IFS{MARKER}-12",
)
# Values that pass a validator's shape and carry the payload after it, per kind of key.
SHAPED = {"ip": ("fe80::10%", "192.0.2.11%"), "host": ("fe80::1%",)}

BASE_SECRETS = {"apiKey": "sk-base", "grafanaAdminPassword": "pw-base"}


def base_config() -> dict:
    raw = copy.deepcopy(stack_settings("a2")) | BASE_SECRETS
    raw["observability"] = {"enabled": True, "npuExporter": {"image": "registry.local/npu-exporter:v6.0.0"}}
    return raw


def _annotation_kinds(annotation) -> set[str]:
    """Which kinds of string input a key takes: text, a list of text, a mapping to text."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return set()
    if annotation is str:
        return {"text"}
    if origin is list:
        inner = typing.get_args(annotation)[0]
        return {"list"} if inner is str else set()
    if origin is dict:
        return {"mapping"}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return set().union(*(_annotation_kinds(a) for a in typing.get_args(annotation)))
    return set()


def string_keys(model: type[BaseModel] = ClusterConfig, prefix: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, kind) of every key taking text, nodes[0] and nodes[1] for the node fields."""
    keys = []
    for field in model.model_fields.values():
        path, annotation = (*prefix, field.alias), field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += string_keys(annotation, path)
        elif typing.get_origin(annotation) is list and typing.get_args(annotation)[0] is Node:
            keys += [((*path, i, *sub), kind) for i in (0, 1) for sub, kind in string_keys(Node)]
        else:
            keys += [(path, kind) for kind in sorted(_annotation_kinds(annotation))]
    return keys


def with_value(raw: dict, path: tuple, kind: str, value: str) -> dict:
    raw = copy.deepcopy(raw)
    parent = raw
    for part in path[:-1]:
        parent = parent[part] if isinstance(part, int) else parent.setdefault(part, {})
    parent[path[-1]] = {"list": [value], "mapping": {"FUZZ_VAR": value}}.get(kind, value)
    return raw


def current(raw: dict, path: tuple) -> str:
    """The key's value in the base stack, or its default: a value its validator accepts."""
    value: typing.Any = raw
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
            break
    if value is None:
        model_value: typing.Any = ClusterConfig.model_validate(raw)
        for part in path:
            model_value = model_value[part] if isinstance(part, int) else getattr(model_value, _snake(part), None)
        value = model_value
    return value if isinstance(value, str) else ""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def candidates(raw: dict, path: tuple) -> list[str]:
    valid = current(raw, path)
    values = []
    for payload in PAYLOADS:
        values += [payload, valid + payload, f"{valid}\ntouch {MARKER}-line"]
        for prefix in SHAPED.get(str(path[-1]), ()):
            values.append(prefix + payload)
    return list(dict.fromkeys(values))


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> Path:
    """Stub tools: nothing reaches Docker, the network or the host; mkdir only below $TMPDIR."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for name in ("docker", "ip", "curl", "wget", "chown", "npu-smi", "hccn_tool", "ssh", "sleep"):
        stub(bin_dir / name, "cat >/dev/null 2>&1 </dev/null; exit 0\n")
    stub(
        bin_dir / "mkdir",
        'for a; do case "$a" in "$TMPDIR"/*) exec /bin/mkdir "$@" ;; esac; done; exit 0\n',
    )
    return bin_dir


def scripts(cfg: ClusterConfig) -> dict[str, str]:
    deployment = plan_deployment(cfg, stack="fuzz")
    plan = deployment.cluster
    out = {}
    for node in plan.nodes:
        out[f"render-{node.name}"] = node_script(plan, node)
        out[f"diagnose-{node.name}"] = collect_command(node, log_lines=5)
    for container in deployment.sidecars:
        out[f"render-{container.name}"] = sidecar_script(deployment, container)
    out["smoke-with-key"] = plan.smoke_curl(with_api_key=True)
    out["smoke"] = plan.smoke_curl(with_api_key=False)
    return out


def run_inert(scripts_: list[str], workdir: Path, tools: Path) -> dict[int, list[str]]:
    """Run each script under /bin/sh in a directory of its own below `workdir`: by script, the
    marker files it created (scripts that created none are left out)."""
    names = {"VLLM_API_KEY"}
    for n, text in enumerate(scripts_):
        (workdir / str(n) / "tmp").mkdir(parents=True)
        (workdir / str(n) / "script.sh").write_text(text)
        names |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    env = {
        "PATH": f"{tools}:/usr/bin:/bin",
        "HOME": str(workdir),
        # The secrets the scripts read from the environment, themselves every payload at once.
        **{name: "".join(PAYLOADS) for name in names},
    }
    # One shell for all of them (a process per script would take minutes on a small machine).
    driver = "\n".join(
        f"(cd {n} && TMPDIR=$PWD/tmp /bin/sh ./script.sh >/dev/null 2>&1 </dev/null)" for n in range(len(scripts_))
    )
    subprocess.run(["/bin/sh", "-c", driver + "\ntrue"], cwd=workdir, env=env, timeout=600, check=True)
    created: dict[int, list[str]] = {}
    for marker in workdir.rglob(f"*{MARKER}*"):
        n = int(marker.relative_to(workdir).parts[0])
        created.setdefault(n, []).append(str(marker.relative_to(workdir / str(n))))
    return created


def test_every_string_key_is_found():
    found = {".".join(str(p) for p in path) for path, _ in string_keys()}
    assert {
        "nodes.0.ip",
        "nodes.1.hostRoot",
        "nodes.0.dockerHost",
        "nodes.0.sshOpts",
        "serve.host",
        "serve.extraArgs",
        "env.extra",
        "ssh.user",
        "model.weightsDir",
        "observability.prometheus.dataDir",
        "apiKey",
    } <= found
    assert len(found) >= 45


def test_the_harness_sees_a_payload_that_runs(tools, tmp_path):
    created = run_inert(["true", f"echo $(touch {MARKER}-self)", 'echo "$VLLM_API_KEY"'], tmp_path, tools)
    assert created == {1: [f"{MARKER}-self"]}


def test_shell_metacharacters_in_any_string_key_are_refused_or_inert(tools, tmp_path):
    base = base_config()
    # Each distinct script runs once, and names every (key, value) that produced it.
    sources: dict[str, list[tuple]] = {}
    refused = 0
    for path, kind in string_keys():
        top = path[0]
        secret_keys = frozenset(BASE_SECRETS) | ({top} if top in SECRET_KEYS else set())
        for value in candidates(base, path):
            try:
                cfg = load_config(with_value(base, path, kind, value), secret_keys)
            except ConfigError:
                refused += 1
                continue
            for name, text in scripts(cfg).items():
                sources.setdefault(text, []).append((path, value, name))
    texts = list(sources)
    created = run_inert(texts, tmp_path, tools)
    assert {n: (sources[texts[n]][:3], markers) for n, markers in created.items()} == {}
    # Both outcomes happen: the harness judged something either way.
    assert refused and len(texts) > 50


def test_the_scripts_quote_what_validation_would_refuse_too(tools, tmp_path):
    """Defence in depth: values no validator lets through today (an IPv6 scope ID, a hostRoot
    with `$(...)`, a control character in a comment) still run as data in every script."""
    cfg = load_config(base_config(), frozenset(BASE_SECRETS))
    deployment = plan_deployment(cfg, stack="fuzz")
    plan = deployment.cluster
    texts = []
    for payload in PAYLOADS:
        head = replace(
            plan.nodes[0],
            ip=f"fe80::10%{payload}",
            nic="auto",
            name=f"a2-0{payload}",
            docker_host=f"ssh://root@[fe80::10%{payload}]",
            host_root=f"/srv/npu{payload}",
            container_name=f"vllm{payload}",
            supervisor_port=9401,
        )
        changed = replace(plan, stack=f"fuzz{payload}", nodes=(head, *plan.nodes[1:]))
        texts += [node_script(changed, head), changed.smoke_curl(True), changed.smoke_curl(False)]
        try:
            texts.append(collect_command(head, log_lines=5))
        except ValueError as refused:
            # The checks' quoting refuses a line break outright: refused is as good as inert.
            assert "refusing to put a line break" in str(refused)
    assert run_inert(texts, tmp_path, tools) == {}


SCOPE_IDS = {
    "nodes[0].ip": ({"nodes": 0, "ip": f"fe80::10%$(touch${{IFS}}{MARKER})"}, "nodes[0].ip: 'fe80::10%$("),
    "a newline after a scope ID": ({"nodes": 1, "ip": f"fe80::11%x\ntouch {MARKER}\ntrue "}, "nodes[1].ip: "),
}


@pytest.mark.parametrize("change,problem", SCOPE_IDS.values(), ids=SCOPE_IDS)
def test_an_ipv6_scope_id_is_refused(change, problem):
    raw = base_config()
    raw["nodes"][change["nodes"]]["ip"] = change["ip"]
    with pytest.raises(ConfigError) as caught:
        load_config(raw, frozenset(BASE_SECRETS))
    (message,) = [p for p in caught.value.problems if p.startswith(problem[:12])]
    assert message.startswith(problem) and "has an IPv6 scope ID, which is not supported" in message


@pytest.mark.parametrize("host", ["fe80::1%eth0", f"fe80::1%$(touch {MARKER})"])
def test_a_listen_address_with_a_scope_id_is_refused(host):
    with pytest.raises(ConfigError) as caught:
        load_config(base_config() | {"serve": {"host": host}}, frozenset(BASE_SECRETS))
    assert any(p.startswith("serve.host: ") and "scope ID" in p for p in caught.value.problems)


def test_no_marker_files_outside_the_work_directories():
    assert not list(Path(os.getcwd()).glob(f"{MARKER}*"))
