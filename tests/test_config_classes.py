"""Mistakes vllm's parser or Docker's grammar would otherwise find at deploy time, one table per class.

Each refused stack is refused alike by validation, by the renderer (`python -m ops.render`)
and by the program under mocks, which declares nothing; each near-miss is accepted by all.
"""

import copy

import pytest
import yaml
from mocked import run_program, stack_settings

from core.config import ConfigError, load_config
from ops import render

PROJECT = "deepseek-r1-ascend"
A2 = stack_settings("a2")
A3 = stack_settings("a3")
DIGEST = "sha256:" + "0123456789abcdef" * 4


def a2(**changes):
    raw = copy.deepcopy(A2)
    raw.update(copy.deepcopy(changes))
    return raw


def extra(*args, base=A2):
    raw = copy.deepcopy(base)
    raw["serve"] = {"extraArgs": list(args)}
    return raw


def rendered_problems(raw, tmp_path, capsys) -> list[str]:
    (tmp_path / "Pulumi.t.yaml").write_text(yaml.safe_dump({"config": {f"{PROJECT}:{k}": v for k, v in raw.items()}}))
    code = render.main(["t", "--project-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert (code, out) == ((2, "") if err else (0, out)), err
    return [line.removeprefix("  - ") for line in err.splitlines()[1:]]


def program_problems(raw, secret_keys=()) -> list[str]:
    deployment = run_program(raw, stack="t", secret_keys=secret_keys)
    if deployment.error is None:
        assert deployment.resources
        return []
    assert deployment.resources == []
    return [line.removeprefix("  - ") for line in str(deployment.error).splitlines()[1:]]


def assert_refused_everywhere(raw, expected, tmp_path, capsys):
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    assert caught.value.problems == expected
    assert rendered_problems(raw, tmp_path, capsys) == expected
    assert program_problems(raw) == expected


def assert_accepted_everywhere(raw, tmp_path, capsys):
    load_config(raw)
    assert rendered_problems(raw, tmp_path, capsys) == []
    assert program_problems(raw) == []


EXTRA_ARGS_REFUSED = {
    "underscores name a derived flag": (
        ["--data_parallel_address", "10.0.0.9"],
        "serve.extraArgs[0]: '--data_parallel_address' (vllm reads --data-parallel-address) sets "
        "--data-parallel-address, which is set from nodes[0].ip; set it there",
    ),
    "= form of a modelled flag with underscores": (
        ["--max_num_seqs=32"],
        "serve.extraArgs[0]: '--max_num_seqs=32' (vllm reads --max-num-seqs) sets --max-num-seqs, which is set "
        "from serve.maxNumSeqs; set it there",
    ),
    "--no- of a modelled boolean": (
        ["--no-async-scheduling"],
        "serve.extraArgs[0]: '--no-async-scheduling' turns off --async-scheduling, which is set from "
        "serve.asyncScheduling; set it to false there",
    ),
    "--no- with underscores": (
        ["--no-trust_remote_code"],
        "serve.extraArgs[0]: '--no-trust_remote_code' (vllm reads --no-trust-remote-code) turns off "
        "--trust-remote-code, which is set from serve.trustRemoteCode; set it to false there",
    ),
    "abbreviated --no- form": (
        ["--no-enable-expert"],
        "serve.extraArgs[0]: '--no-enable-expert' (vllm reads --no-enable-expert-parallel) turns off "
        "--enable-expert-parallel, which is set from serve.enableExpertParallel; set it to false there",
    ),
    "short alias of a modelled boolean": (
        ["-ep"],
        "serve.extraArgs[0]: '-ep' sets --enable-expert-parallel, which is set from serve.enableExpertParallel; "
        "set it there",
    ),
    "short alias with its value attached": (
        ["-qw8a8"],
        "serve.extraArgs[0]: '-qw8a8' (vllm reads -q) sets --quantization, which is set from serve.quantization; "
        "set it there",
    ),
    "unique abbreviation of a modelled flag": (
        ["--max-model", "8k"],
        "serve.extraArgs[0]: '--max-model' (vllm reads --max-model-len) sets --max-model-len, which is set from "
        "serve.maxModelLen; set it there",
    ),
    "unique abbreviation of a derived flag": (
        ["--data-parallel-size-l=1"],
        "serve.extraArgs[0]: '--data-parallel-size-l=1' (vllm reads --data-parallel-size-local) sets "
        "--data-parallel-size-local, which is set from serve.dataParallelSize divided by the number of nodes; "
        "set it there",
    ),
    "dotted key of a modelled JSON flag": (
        ["--compilation-config.mode", "3"],
        "serve.extraArgs[0]: '--compilation-config.mode' replaces the whole --compilation-config value, which "
        "is set from serve.compilationConfig; set mode there",
    ),
    "dotted key on a short alias, = form": (
        ["-cc.cudagraph_mode=FULL"],
        "serve.extraArgs[0]: '-cc.cudagraph_mode=FULL' replaces the whole --compilation-config "
        "value, which is set from serve.compilationConfig; set cudagraph_mode there",
    ),
    "flag and value in one item": (
        ["--max-num-seqs 32"],
        "serve.extraArgs[0]: '--max-num-seqs 32' holds a flag and its value in one item, which vllm takes as one "
        "unknown word; write it as the items '--max-num-seqs', '32'",
    ),
    "two flags in one item": (
        ["--enforce-eager --disable-log-stats"],
        "serve.extraArgs[0]: '--enforce-eager --disable-log-stats' holds a flag and its value in one item, which "
        "vllm takes as one unknown word; write it as the items '--enforce-eager', '--disable-log-stats'",
    ),
    "a fixed data-parallel rank": (
        ["-dpn", "1"],
        "serve.extraArgs[0]: '-dpn' conflicts with this deployment's layout: each node runs "
        "its ranks from --data-parallel-start-rank; one fixed rank on every node would start them all as the "
        "same rank",
    ),
    "API servers beside headless nodes": (
        ["--api-server-count=2"],
        "serve.extraArgs[0]: '--api-server-count=2' conflicts with this deployment's layout: headless nodes run "
        "no API server, and vllm refuses --api-server-count beside --headless",
    ),
    "torchrun-style node count": (
        ["-n", "2"],
        "serve.extraArgs[0]: '-n' conflicts with this deployment's layout: vllm's torchrun-style "
        "multi-node launch conflicts with the data-parallel group the nodes form",
    ),
    "torchrun-style node rank": (
        ["--node_rank", "1"],
        "serve.extraArgs[0]: '--node_rank' (vllm reads --node-rank) conflicts with this deployment's layout: "
        "vllm's torchrun-style multi-node launch conflicts with the data-parallel group the nodes form",
    ),
    "a Ray data-parallel backend": (
        ["-dpb", "ray"],
        "serve.extraArgs[0]: '-dpb' conflicts with this deployment's layout: the nodes form their data-parallel "
        "group with vllm's own multiprocessing backend; another backend (ray) needs a cluster this deployment "
        "does not run",
    ),
    "external load balancing": (
        ["--data_parallel_external_lb"],
        "serve.extraArgs[0]: '--data_parallel_external_lb' (vllm reads --data-parallel-external-lb) conflicts "
        "with this deployment's layout: the head serves the API for the whole group; an external load balancer "
        "would need an API server on every node",
    ),
    "hybrid load balancing": (
        ["-dph"],
        "serve.extraArgs[0]: '-dph' conflicts with this deployment's layout: the head serves the API for the "
        "whole group; hybrid load balancing would start an API server on every node",
    ),
    "the API on a Unix socket": (
        ["--uds=/tmp/vllm.sock"],
        "serve.extraArgs[0]: '--uds=/tmp/vllm.sock' conflicts with this deployment's layout: the API would "
        "listen on a Unix socket instead of serve.host:serve.port, where readiness, the smoke test and clients "
        "reach it",
    ),
    "ambiguous abbreviation": (
        ["--max-num", "8"],
        "serve.extraArgs[0]: vllm 0.18.0 refuses '--max-num': ambiguous option: --max-num could match "
        "--max-num-batched-tokens, --max-num-partial-prefills, --max-num-seqs; write the whole flag",
    ),
    "unknown flag": (
        ["--enforce-eagr"],
        "serve.extraArgs[0]: vllm 0.18.0 refuses '--enforce-eagr': unrecognized arguments: --enforce-eagr; "
        "did you mean '--enforce-eager'?",
    ),
    "value outside the choices": (
        ["--kv-cache-dtype", "fp4"],
        "serve.extraArgs[0]: vllm 0.18.0 refuses '--kv-cache-dtype': argument --kv-cache-dtype: invalid choice: "
        "'fp4' (choose from 'auto', 'bfloat16', 'float16', 'fp8', 'fp8_ds_mla', 'fp8_e4m3', 'fp8_e5m2', "
        "'fp8_inc')",
    ),
    "switch given a value": (
        ["--enforce-eager=true"],
        "serve.extraArgs[0]: vllm 0.18.0 refuses '--enforce-eager=true': argument --enforce-eager: ignored "
        "explicit argument 'true'",
    ),
    "value missing": (
        ["--max-loras"],
        "serve.extraArgs[0]: vllm 0.18.0 refuses '--max-loras': argument --max-loras: expected one argument",
    ),
}


@pytest.mark.parametrize("args,problem", EXTRA_ARGS_REFUSED.values(), ids=EXTRA_ARGS_REFUSED)
def test_extra_args_are_read_as_vllm_reads_them(args, problem, tmp_path, capsys):
    assert_refused_everywhere(extra(*args), [problem], tmp_path, capsys)


EXTRA_ARGS_ACCEPTED = {
    "a switch vllm has": ["--enforce-eager"],
    "a non-derived flag in = form": ["--max-loras=4"],
    "underscores in a non-derived flag": ["--kv_cache_dtype", "auto"],
    "--no- of a flag the config leaves alone": ["--no-enable-chunked-prefill"],
    "--no- of a layout-conflicting switch, vllm's default": ["--no-data-parallel-external-lb"],
    "-O level": ["-O3"],
    "a human-readable size": ["--long-prefill-token-threshold", "2048"],
    "JSON on a flag the config leaves alone": ["--additional-config", '{"ascend_scheduler_config": {}}'],
}


@pytest.mark.parametrize("args", EXTRA_ARGS_ACCEPTED.values(), ids=EXTRA_ARGS_ACCEPTED)
def test_extra_args_vllm_accepts_are_accepted(args, tmp_path, capsys):
    assert_accepted_everywhere(extra(*args), tmp_path, capsys)


def test_api_servers_are_fine_on_a_single_node(tmp_path, capsys):
    assert_accepted_everywhere(extra("-asc", "2", base=A3), tmp_path, capsys)


IMAGES_REFUSED = {
    "registry with a URL scheme": (
        {"registry": "https://m.daocloud.io/quay.io"},
        "image.registry: 'https://m.daocloud.io/quay.io' has a URL scheme, which Docker references do not take; "
        "use 'm.daocloud.io/quay.io'",
    ),
    "registry with a trailing slash": (
        {"registry": "quay.io/"},
        "image.registry: 'quay.io/' ends with '/'; use 'quay.io'",
    ),
    "registry without a dot or port": (
        {"registry": "mirror"},
        "image.registry: 'mirror' has no '.' or ':', so Docker would take it for a path on Docker Hub; use the "
        "registry's full host name or host:port, e.g. mirror.example.com or mirror:5000",
    ),
    "registry path in capitals": (
        {"registry": "quay.io/Ascend"},
        "image.registry: 'quay.io/Ascend': 'Ascend' is not a Docker path component (lowercase letters and "
        "digits joined by '.', '_' or '-'); use 'quay.io/ascend'",
    ),
    "registry port that is not a number": (
        {"registry": "registry.local:https"},
        "image.registry: 'registry.local:https': 'registry.local:https' is not a registry host (host or "
        "host:port, e.g. quay.io or registry.local:5000)",
    ),
    "repository in capitals": (
        {"repository": "Ascend/vllm-ascend"},
        "image.repository: 'Ascend/vllm-ascend': 'Ascend' is not a Docker path component (lowercase letters "
        "and digits joined by '.', '_' or '-'); use 'ascend/vllm-ascend'",
    ),
    "repository with a space inside": (
        {"repository": "ascend/vllm ascend"},
        "image.repository: 'ascend/vllm ascend': 'vllm ascend' is not a Docker path component (lowercase "
        "letters and digits joined by '.', '_' or '-')",
    ),
    "tag with a trailing space": (
        {"tag": "v0.18.0 "},
        "image.tag: 'v0.18.0 ' has spaces around it, which Docker refuses; use 'v0.18.0'",
    ),
    "tag starting with a dot": (
        {"tag": ".v0.18.0"},
        "image.tag: '.v0.18.0' is not a Docker tag: at most 128 letters, digits, '_', '.' and '-', not "
        "starting with '.' or '-'; pin a version tag such as v0.18.0",
    ),
    "tag too long": (
        {"tag": "v" * 129},
        f"image.tag: '{'v' * 129}' is not a Docker tag: at most 128 letters, digits, '_', '.' and '-', not "
        "starting with '.' or '-'; pin a version tag such as v0.18.0",
    ),
    "reference with spaces around it": (
        {"ref": " quay.io/ascend/vllm-ascend:v0.18.0\n"},
        "image.ref: ' quay.io/ascend/vllm-ascend:v0.18.0\\n' has spaces around it, which Docker refuses; use "
        "'quay.io/ascend/vllm-ascend:v0.18.0'",
    ),
    "short digest": (
        {"ref": "quay.io/ascend/vllm-ascend@sha256:0123abcd"},
        "image.ref: 'quay.io/ascend/vllm-ascend@sha256:0123abcd' has the digest 'sha256:0123abcd'; a digest is "
        "sha256: and 64 lowercase hex characters, as `docker inspect --format '{{.RepoDigests}}'` prints it",
    ),
    "digest of another algorithm": (
        {"ref": "quay.io/ascend/vllm-ascend@md5:" + "0" * 32},
        f"image.ref: 'quay.io/ascend/vllm-ascend@md5:{'0' * 32}' has the digest 'md5:{'0' * 32}'; a digest is "
        "sha256: and 64 lowercase hex characters, as `docker inspect --format '{{.RepoDigests}}'` prints it",
    ),
    "reference with a URL scheme": (
        {"ref": "https://quay.io/ascend/vllm-ascend:v0.18.0"},
        "image.ref: 'https://quay.io/ascend/vllm-ascend:v0.18.0' has a URL scheme, which Docker references do "
        "not take; use 'quay.io/ascend/vllm-ascend:v0.18.0'",
    ),
    "reference path in capitals": (
        {"ref": "quay.io/Ascend/vllm-ascend:v0.18.0"},
        "image.ref: 'quay.io/Ascend/vllm-ascend:v0.18.0': 'Ascend' is not a Docker path component (lowercase "
        "letters and digits joined by '.', '_' or '-'); use 'quay.io/ascend/vllm-ascend:v0.18.0'",
    ),
    "composed name too long": (
        {"repository": "/".join(["ascend"] * 40)},
        "image: registry, repository and tag compose 'm.daocloud.io/quay.io/"
        + "/".join(["ascend"] * 40)
        + ":v0.18.0': is 301 characters long; Docker allows at most 255 in an image name",
    ),
}


@pytest.mark.parametrize("image,problem", IMAGES_REFUSED.values(), ids=IMAGES_REFUSED)
def test_image_references_are_read_as_docker_reads_them(image, problem, tmp_path, capsys):
    assert_refused_everywhere(a2(image=image), [problem], tmp_path, capsys)


IMAGES_ACCEPTED = {
    "registry with a port": {"registry": "registry.local:5000"},
    "registry at an IPv6 address with a path": {"registry": "[2001:db8::5]:5000/mirror"},
    "Docker Hub (no registry)": {"registry": "", "repository": "ascend/vllm-ascend"},
    "digest reference": {"ref": f"registry.local:5000/ascend/vllm-ascend@{DIGEST}", "vllmVersion": "0.18.0"},
    "tag and digest": {"ref": f"quay.io/ascend/vllm-ascend:v0.18.0@{DIGEST}"},
    "separators in a path": {"repository": "ascend/vllm__ascend-v1.x"},
}


@pytest.mark.parametrize("image", IMAGES_ACCEPTED.values(), ids=IMAGES_ACCEPTED)
def test_image_references_docker_accepts_are_accepted(image, tmp_path, capsys):
    assert_accepted_everywhere(a2(image=image), tmp_path, capsys)


def four_nodes():
    return [{"name": f"n{i}", "ip": f"192.0.2.{20 + i}", "nic": "eth0"} for i in range(4)]


def nodes_with(**changes):
    nodes = four_nodes()
    for where, value in changes.items():
        index, key = where.split("_", 1)
        nodes[int(index[1:])][key] = value
    return nodes


AT_ONCE = {
    "invalid address beside a duplicate name": (
        nodes_with(n1_ip="192.0.2.300", n3_name="n1"),
        [
            "nodes[1].ip: '192.0.2.300' is not an IP address; use the address of the node's NIC, e.g. 192.0.2.10",
            "nodes[3].name: 'n1' is also nodes[1].name; node names must be unique",
        ],
    ),
    "invalid name beside a duplicate address": (
        nodes_with(n0_name="Head_0", n2_ip="192.0.2.21"),
        [
            "nodes[0].name: 'Head_0' is not a valid node name; use 1-40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
            "nodes[2].ip: '192.0.2.21' is also nodes[1].ip; node addresses must be unique",
            "nodes[2].containerName: 'vllm-ascend' is also nodes[1].containerName; container names on one "
            "Docker host must be unique",
            "nodes[2].hostRoot: '/' is also nodes[1].hostRoot; NPU devices on one Docker host must be unique",
        ],
    ),
    "missing NIC beside a loopback address": (
        nodes_with(n1_nic=None, n2_ip="127.0.0.1"),
        [
            "nodes[1].nic: got None; input should be a valid string",
            "nodes[2].ip: 127.0.0.1 is a loopback address, which other nodes cannot reach; use the address of "
            "the node's NIC (loopback only suits nodes on this machine's Docker)",
        ],
    ),
    "invalid first address beside mixed address families": (
        nodes_with(n0_ip="head", n3_ip="2001:db8::3"),
        [
            "nodes[0].ip: 'head' is not an IP address; use the address of the node's NIC, e.g. 192.0.2.10",
            "nodes[3].ip: 2001:db8::3 is IPv6 but nodes[1].ip is IPv4; a DP group uses one address family",
        ],
    ),
    "invalid dockerHost beside a topology mistake": (
        nodes_with(n2_dockerHost="docker.local"),
        [
            "nodes[2].dockerHost: 'docker.local' is not a Docker host; use ssh://user@host[:port] or "
            "unix:///path/to/docker.sock",
            "serve.tensorParallelSize: tensorParallelSize 4 x dataParallelSize 4 = 16 NPUs, but 4 atlas-800-a2 "
            "nodes have 32; every NPU must hold one rank, e.g. dataParallelSize 32 x tensorParallelSize 1, "
            "dataParallelSize 16 x tensorParallelSize 2, dataParallelSize 8 x tensorParallelSize 4, "
            "dataParallelSize 4 x tensorParallelSize 8",
        ],
    ),
}


@pytest.mark.parametrize("nodes,expected", AT_ONCE.values(), ids=AT_ONCE)
def test_every_problem_at_once_even_beside_an_invalid_node_field(nodes, expected, tmp_path, capsys):
    # Four A2 nodes hold 32 NPUs: 8 x 4 fits them, the default 4 x 4 is the topology mistake.
    serve = {} if "serve.tensorParallelSize" in expected[-1] else {"dataParallelSize": 8}
    assert_refused_everywhere(a2(nodes=nodes, serve=serve), expected, tmp_path, capsys)


def test_ipv6_nodes_are_accepted(tmp_path, capsys):
    nodes = [{"name": f"a2-{i}", "ip": f"2001:db8::{i + 1}", "nic": "eth0"} for i in range(2)]
    assert_accepted_everywhere(a2(nodes=nodes, serve={"host": "::"}), tmp_path, capsys)


SECRET = "s3cr3t-Value"
SECRETS = {
    "secret string where a mapping belongs": (
        {"env": {"extra": SECRET}},
        "env.extra: the value is hidden because env is a secret; input should be a valid dictionary",
    ),
    "secret list where a mapping belongs": (
        {"env": [SECRET]},
        "env: the value is hidden because env is a secret; input should be a valid dictionary or instance of Env",
    ),
    "secret mapping with a list value": (
        {"env": {"extra": {"SITE_TOKEN": [SECRET]}}},
        "env.extra: expected a mapping of environment variable names (letters, digits and '_') to strings, "
        "numbers or booleans; the value is hidden because env is a secret",
    ),
    "secret mapping with a bad name": (
        {"env": {"extra": {SECRET: "x"}}},
        "env.extra: expected a mapping of environment variable names (letters, digits and '_') to strings, "
        "numbers or booleans; the value is hidden because env is a secret",
    ),
    "secret node list with a duplicate address": (
        {"nodes": [{"name": "a", "ip": "10.9.8.7", "nic": "eth0"}, {"name": "b", "ip": "10.9.8.7", "nic": "eth0"}]},
        "nodes[1].ip: expected the IP address of the node's NIC, unique across nodes and of the same family as "
        "nodes[0].ip; the value is hidden because nodes is a secret (and so is the rest of this problem, which "
        "would quote it)",
    ),
}


@pytest.mark.parametrize("changes,problem", SECRETS.values(), ids=SECRETS)
def test_secrets_never_appear_in_an_error(changes, problem):
    secret_keys = tuple(changes)
    with pytest.raises(ConfigError) as caught:
        load_config(a2(**changes), frozenset(secret_keys))
    assert problem in caught.value.problems
    error = program_problems(a2(**changes), secret_keys)
    assert problem in error
    for text in (str(caught.value), "\n".join(error)):
        assert SECRET not in text and "10.9.8.7" not in text


@pytest.mark.parametrize("key", ["apiKey", "hfToken", "sshPrivateKey"])
@pytest.mark.parametrize("value", [{"key": SECRET}, [SECRET]], ids=["mapping", "list"])
def test_a_named_secret_of_the_wrong_shape_is_never_shown(key, value):
    # Pulumi hands a secret over as the text typed, so only a direct call sees another shape.
    with pytest.raises(ConfigError) as caught:
        load_config(a2(**{key: value}), frozenset({key}))
    assert caught.value.problems == [
        f"{key}: the value is hidden because {key} is a secret; input should be a valid string"
    ]


def test_a_secret_set_by_path_beside_a_bad_sibling_is_hidden_by_the_renderer(tmp_path, capsys):
    raw = a2(env={"extra": {"SITE_TOKEN": {"secure": "v1:AAAAencryptedAAAA"}, "OTHER": [SECRET]}})
    assert rendered_problems(raw, tmp_path, capsys) == [
        "env.extra: expected a mapping of environment variable names (letters, digits and '_') to strings, "
        "numbers or booleans; the value is hidden because env is a secret"
    ]


TOKEN = "hf_PlainTextT0kenValue0123456789abcd"
KEY = "sk-PlainTextApiKey0123456789"
ON_ARGV = (
    "puts a credential on vllm's command line, which every user of the node reads (`ps`, `docker inspect`), "
    "even when serve is a secret; remove it and set `pulumi config set --secret"
)
HF_FIX = f"{ON_ARGV} hfToken <value>`: the containers get it as HF_TOKEN, which vllm reads like --hf-token"
API_FIX = f"{ON_ARGV} apiKey <value>`: the containers get it as VLLM_API_KEY, which vllm reads like --api-key"
CREDENTIALS_REFUSED = {
    "token as two items": (["--hf-token", TOKEN], [f"serve.extraArgs[0]: '--hf-token' {HF_FIX}"]),
    "token in = form": ([f"--hf-token={TOKEN}"], [f"serve.extraArgs[0]: '--hf-token=<hidden>' {HF_FIX}"]),
    "token with underscores": (
        [f"--hf_token={TOKEN}"],
        [f"serve.extraArgs[0]: '--hf_token=<hidden>' (vllm reads --hf-token) {HF_FIX}"],
    ),
    "token abbreviated": (
        ["--hf_tok", TOKEN],
        [f"serve.extraArgs[0]: '--hf_tok' (vllm reads --hf-token) {HF_FIX}"],
    ),
    "token as JSON": ([f'--hf-token={{"token": "{TOKEN}"}}'], [f"serve.extraArgs[0]: '--hf-token=<hidden>' {HF_FIX}"]),
    "token as a dotted JSON key": (
        [f"--hf-token.token={TOKEN}"],
        [f"serve.extraArgs[0]: '--hf-token.token=<hidden>' {HF_FIX}"],
    ),
    "token and flag in one item": ([f"--hf-token {TOKEN}"], [f"serve.extraArgs[0]: '--hf-token <hidden>' {HF_FIX}"]),
    "token given twice": (
        ["--hf-token", TOKEN, f"--hf-tok={TOKEN}"],
        [
            f"serve.extraArgs[0]: '--hf-token' {HF_FIX}",
            f"serve.extraArgs[2]: '--hf-tok=<hidden>' (vllm reads --hf-token) {HF_FIX}",
        ],
    ),
    "a stray value after the token": (
        ["--hf-token", TOKEN, TOKEN],
        [
            f"serve.extraArgs[0]: '--hf-token' {HF_FIX}",
            "serve.extraArgs[2]: vllm 0.18.0 refuses '<hidden>': unrecognized arguments: <hidden>; see "
            "`vllm serve --help=all`",
        ],
    ),
    "key as two items": (["--api-key", KEY, KEY], [f"serve.extraArgs[0]: '--api-key' {API_FIX}"]),
    "key in = form with underscores": (
        [f"--api_key={KEY}"],
        [f"serve.extraArgs[0]: '--api_key=<hidden>' (vllm reads --api-key) {API_FIX}"],
    ),
    "key abbreviated": (
        [f"--api-k={KEY}"],
        [f"serve.extraArgs[0]: '--api-k=<hidden>' (vllm reads --api-key) {API_FIX}"],
    ),
    "token flag misspelt": (
        [f"--hf-tokn={TOKEN}"],
        [
            "serve.extraArgs[0]: vllm 0.18.0 refuses '--hf-tokn=<hidden>': unrecognized arguments: "
            "--hf-tokn=<hidden>; did you mean '--hf-token'?"
        ],
    ),
    "token flag misspelt in one item": (
        [f"--hf-tokn {TOKEN}"],
        [
            "serve.extraArgs[0]: '--hf-tokn <hidden>' holds a flag and its value in one item, which vllm takes as "
            "one unknown word; write it as the items '--hf-tokn', '<hidden>'"
        ],
    ),
    "key flag too short to tell": (
        [f"--api={KEY}"],
        [
            "serve.extraArgs[0]: vllm 0.18.0 refuses '--api=<hidden>': ambiguous option: --api=<hidden> could "
            "match --api-key, --api-server-count; write the whole flag"
        ],
    ),
    "token inside another flag's value": (
        [f"--max-model-len=8 --hf-token {TOKEN}"],
        [
            "serve.extraArgs[0]: vllm 0.18.0 refuses '--max-model-len=8 --hf-token <hidden>': argument "
            "--max-model-len: invalid size-or-auto value: '8 --hf-token <hidden>'"
        ],
    ),
    "token beside a flag set elsewhere": (
        [f"--hf-token={TOKEN}", "--max-num-seq=3"],
        [
            f"serve.extraArgs[0]: '--hf-token=<hidden>' {HF_FIX}",
            "serve.extraArgs[1]: '--max-num-seq=3' (vllm reads --max-num-seqs) sets --max-num-seqs, which is set "
            "from serve.maxNumSeqs; set it there",
        ],
    ),
    "extraArgs written as one string": (
        f"--hf-token {TOKEN}",
        ["serve.extraArgs: got text (not shown: it may hold a credential); input should be a valid list"],
    ),
    "extraArgs written as a mapping": (
        {"--hf-token": TOKEN},
        ["serve.extraArgs: got a mapping (not shown: it may hold a credential); input should be a valid list"],
    ),
    "an item written as a list": (
        [["--hf-token", TOKEN]],
        ["serve.extraArgs[0]: got a list (not shown: it may hold a credential); input should be a valid string"],
    ),
}


def assert_refused_without_credentials(raw, expected, tmp_path, capsys, secret_keys=()):
    """Refused with exactly `expected` by validation, the program and (reading no secrets) the
    renderer, and neither TOKEN nor KEY in anything they print."""
    with pytest.raises(ConfigError) as caught:
        load_config(raw, frozenset(secret_keys))
    printed = [caught.value.problems, program_problems(raw, secret_keys)]
    if not secret_keys:
        printed.append(rendered_problems(raw, tmp_path, capsys))
    assert printed == [expected] * len(printed)
    text = str(caught.value) + "\n".join(line for problems in printed for line in problems)
    assert TOKEN not in text and KEY not in text


@pytest.mark.parametrize("args,expected", CREDENTIALS_REFUSED.values(), ids=CREDENTIALS_REFUSED)
def test_a_credential_in_extra_args_is_refused_without_its_value(args, expected, tmp_path, capsys):
    assert_refused_without_credentials(a2(serve={"extraArgs": args}), expected, tmp_path, capsys)


SECRET_SERVE = (
    "expected vllm serve arguments vllm accepts, one flag or value per item, none that the config sets itself "
    "(docs/configuration.md) and no credential (use the apiKey and hfToken secrets); the value is hidden because "
    "serve is a secret (and so is the rest of this problem, which would quote it)"
)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--hf-token", TOKEN], [f"serve.extraArgs[0]: {SECRET_SERVE}"]),
        ([f"--api-key={KEY}"], [f"serve.extraArgs[0]: {SECRET_SERVE}"]),
        # The README's own mistake: the flag and its value in one item.
        ([f"--hf-token {TOKEN}"], [f"serve.extraArgs[0]: {SECRET_SERVE}"]),
        # vllm's own refusal quotes the value.
        ([f"--max-num-batched-tokens={KEY}"], [f"serve.extraArgs[0]: {SECRET_SERVE}"]),
        (["--enforce-eager", f"--max-num-batched-tokens={KEY}"], [f"serve.extraArgs[1]: {SECRET_SERVE}"]),
    ],
    ids=["token as two items", "key in = form", "token and flag in one item", "a value vllm refuses", "second item"],
)
def test_a_credential_under_a_secret_serve_is_refused_all_the_same_with_no_fragment_of_it(
    args, expected, tmp_path, capsys
):
    # Pulumi encrypting serve changes nothing on the node: the command line is there for `ps`.
    assert_refused_without_credentials(a2(serve={"extraArgs": args}), expected, tmp_path, capsys, ("serve",))
    with pytest.raises(ConfigError) as caught:
        load_config(a2(serve={"extraArgs": args}), frozenset({"serve"}))
    for fragment in ("hf_", "sk-", "PlainText", "0123456789"):
        assert fragment not in str(caught.value)


def test_a_secret_serve_without_a_credential_is_accepted():
    assert load_config(a2(serve={"extraArgs": ["--enforce-eager"]}), frozenset({"serve"})).serve.extra_args == [
        "--enforce-eager"
    ]


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"extra": {"HF_TOKEN": TOKEN}}, "env.extra.HF_TOKEN: set from hfToken; remove it here"),
        (
            {"extra": f"HF_TOKEN={TOKEN}"},
            "env.extra: got text (not shown: it may hold a credential); input should be a valid dictionary",
        ),
        (
            {"multiNode": [f"HF_TOKEN={TOKEN}"]},
            "env.multiNode: got a list (not shown: it may hold a credential); input should be a valid dictionary",
        ),
    ],
    ids=["a token variable", "variables as text", "variables as a list"],
)
def test_a_token_in_env_is_refused_without_its_value(env, expected, tmp_path, capsys):
    assert_refused_without_credentials(a2(env=env), [expected], tmp_path, capsys)
