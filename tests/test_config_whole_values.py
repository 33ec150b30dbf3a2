"""Every identifier, address and path validator matches the whole value: no trailing newline
(`re.match` with `$` let one through), no control character, no IPv6 scope ID, no shell
metacharacter in a path; ssh.user is a POSIX user name; Docker is never reached over plain TCP."""

import copy

import pytest
from mocked import stack_settings

from core.config import ConfigError, load_config

A2 = stack_settings("a2")


def with_value(path: tuple, value) -> dict:
    raw = copy.deepcopy(A2)
    parent = raw
    for part in path[:-1]:
        parent = parent[part] if isinstance(part, int) else parent.setdefault(part, {})
    parent[path[-1]] = value
    return raw


def key(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def refused(path: tuple, value) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(with_value(path, value))
    (problem,) = [p for p in caught.value.problems if p.startswith(key(path) + ":")]
    return problem


TRAILING_NEWLINE = {
    "node name": (("nodes", 0, "name"), "a2-0\n"),
    "former node name": (("nodes", 0, "renamedFrom"), "a2-9\n"),
    "NIC": (("nodes", 0, "nic"), "eth0\n"),
    "container name": (("nodes", 0, "containerName"), "vllm-ascend\n"),
    "Docker host": (("nodes", 0, "dockerHost"), "ssh://root@192.0.2.11\n"),
    "host root": (("nodes", 0, "hostRoot"), "/srv/npu\n"),
    "weights directory": (("model", "weightsDir"), "/data/models\n"),
    "shared memory size": (("container", "shmSize"), "2g\n"),
    "ssh user": (("ssh", "user"), "root\n"),
    "address": (("nodes", 0, "ip"), "192.0.2.11\n"),
    "listen address": (("serve", "host"), "0.0.0.0\n"),
}


@pytest.mark.parametrize("path,value", TRAILING_NEWLINE.values(), ids=TRAILING_NEWLINE)
def test_a_trailing_newline_is_refused(path, value):
    problem = refused(path, value)
    # The message shows the value escaped: a raw line break would start a new line of output.
    assert "\n" not in problem and "\\n" in problem


def test_an_environment_variable_name_must_be_whole():
    with pytest.raises(ConfigError) as caught:
        load_config(with_value(("env", "extra"), {"SITE_VAR\n": "x"}))
    assert caught.value.problems[0].startswith("env.extra: ")


CONTROL = {
    "model name": (("model", "name"), "vllm-ascend/DeepSeek-R1\x1b[2J"),
    "served name": (("model", "servedName"), "deepseek_r1\r"),
    "quantization": (("serve", "quantization"), "ascend\x00"),
    "ssh option": (("nodes", 0, "sshOpts"), ["-o", "ProxyJump=bastion\nProxyCommand=sh"]),
    "lm_eval tasks": (("accuracy", "tasks"), "gsm8k\n"),
}


@pytest.mark.parametrize("path,value", CONTROL.values(), ids=CONTROL)
def test_a_control_character_is_refused(path, value):
    problem = refused(path, value)
    assert "holds the control character" in problem
    assert not any(c in problem for c in "\x00\x1b\r\n")


@pytest.mark.parametrize(
    "user",
    ["-oProxyCommand=touch${IFS}pwned", "root;id", "ro ot", "root$(id)", "", "9lives", "a" * 33],
)
def test_ssh_user_is_a_posix_user_name(user):
    assert refused(("ssh", "user"), user).startswith(f"ssh.user: {user!r} is not a user name; use the POSIX form")


@pytest.mark.parametrize("user", ["root", "deploy", "svc_ascend", "ops.team-1", "_admin"])
def test_ordinary_user_names_are_accepted(user):
    cfg = load_config(with_value(("ssh", "user"), user))
    assert cfg.docker_url(cfg.nodes[0]) == f"ssh://{user}@192.0.2.11"


@pytest.mark.parametrize("host", ["tcp://192.0.2.11:2375", "tcp://192.0.2.11:2376"])
def test_docker_over_plain_tcp_is_refused(host):
    assert refused(("nodes", 0, "dockerHost"), host) == (
        f"nodes[0].dockerHost: '{host}' reaches Docker over plain TCP, without TLS: anyone on that network would "
        "own the node; use ssh://user@host[:port] or unix:///path/to/docker.sock (ssh is pinned to nodes[i].hostKey)"
    )


@pytest.mark.parametrize(
    "host",
    [
        "ssh://root@[fe80::1%eth0]",
        "ssh://root@host$(touch${IFS}pwned)",
        "ssh://root@host;id",
        "ssh://-oProxyCommand=id@host",
        "unix:///var/run/docker.sock$(id)",
        "ssh://root@192.0.2.11/path",
    ],
)
def test_a_docker_host_is_a_url_of_known_parts_only(host):
    assert "is not a Docker host; use ssh://user@host[:port] or unix:///path/to/docker.sock" in refused(
        ("nodes", 0, "dockerHost"), host
    )


@pytest.mark.parametrize(
    "host",
    ["ssh://root@192.0.2.11", "ssh://deploy@[2001:db8::1]:2222", "ssh://a2-0.example.com", "unix:///run/docker.sock"],
)
def test_ordinary_docker_hosts_are_accepted(host):
    assert load_config(with_value(("nodes", 0, "dockerHost"), host)).nodes[0].docker_host == host


PATHS = {
    "command substitution": "/srv/npu$(touch${IFS}pwned)",
    "backticks": "/srv/npu`id`",
    "a double quote": '/srv/npu"; id; "',
    "a blank": "/srv/my npu",
    "Docker's separator": "/srv/npu:/etc",
    "a parent component": "/srv/../etc",
    "a dot component": "/srv/./npu",
    "a tab": "/srv/npu\t",
}


@pytest.mark.parametrize("value", PATHS.values(), ids=PATHS)
@pytest.mark.parametrize(
    "path",
    [("nodes", 0, "hostRoot"), ("model", "weightsDir"), ("observability", "prometheus", "dataDir")],
    ids=["hostRoot", "weightsDir", "prometheus.dataDir"],
)
def test_a_path_is_plain_and_normalised(path, value):
    problem = refused(path, value)
    assert ("holds" in problem and "use a path of letters, digits" in problem) or "'..' component" in problem


@pytest.mark.parametrize("value", ["/", "/srv/npu-root_1/x.y", "/data/DeepSeek-R1+W8A8@v1"])
def test_ordinary_paths_are_accepted(value):
    assert load_config(with_value(("nodes", 0, "hostRoot"), value)).nodes[0].host_root == value


@pytest.mark.parametrize("path", [("benchmark", "resultDir"), ("accuracy", "outputDir")])
def test_result_directories_are_absolute_paths_in_the_container(path):
    assert "is not an absolute path" in refused(path, "results")


def test_a_pinned_host_key_is_whole_and_kept_without_surrounding_blanks():
    key_text = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey"
    assert load_config(with_value(("nodes", 0, "hostKey"), key_text + "\n")).nodes[0].host_key == key_text
    problem = refused(("nodes", 0, "hostKey"), key_text + "\n192.0.2.66 ssh-ed25519 AAAAother")
    assert problem.startswith("nodes[0].hostKey: is not an SSH public host key")
