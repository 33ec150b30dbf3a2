"""`python -m ops.render`: the dry run anyone can do without Pulumi or hardware."""

import shlex
import subprocess
import sys

import pytest
import seed
import yaml
from hoststubs import stub
from mocked import PROJECT_DIR, run_program, stack_settings

from core.config import load_config
from core.plan import plan_cluster

PROJECT = "deepseek-r1-ascend"


def render(*args, cwd=PROJECT_DIR):
    return subprocess.run(
        [sys.executable, "-m", "ops.render", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def script_parts(script):
    """(exported env, docker run options before the image, image, command) of one node's script."""
    exports, command = {}, []
    for line in script.replace("\\\n", " ").splitlines():
        if line.startswith("export "):
            name, value = line[len("export ") :].split("=", 1)
            exports[name] = shlex.split(value)[0]
        elif line.startswith(("docker run", "docker create")):
            command = shlex.split(line)
    image_at = next(i for i, arg in enumerate(command) if arg.startswith("m.daocloud.io/"))
    return exports, command[:image_at], command[image_at], command[image_at + 1 :]


def option_values(options, flag):
    return [options[i + 1] for i, arg in enumerate(options) if arg == flag]


def test_a2_scripts_are_the_tutorials_node_scripts():
    result = render("a2")
    assert result.returncode == 0, result.stderr
    node0, door, node1 = result.stdout.split("\n#!/bin/sh\n")
    assert door.startswith("# a2 / a2-0: front-door\n")
    for script, ip, serve in ((node0, "192.0.2.11", seed.NODE0_SERVE), (node1, "192.0.2.12", seed.NODE1_SERVE)):
        exports, options, image, command = script_parts(script)
        assert exports == seed.fill(seed.MULTI_NODE_ENV, local_ip=ip, nic_name="eth0")
        tutorial = seed.fill(serve, local_ip=ip, node0_ip="192.0.2.11")
        assert command == seed.behind_the_front_door(tutorial, "192.0.2.11")
        assert image == seed.IMAGE
        assert {"--net=host", "--shm-size=1g"} <= set(options)
        assert option_values(options, "--device") == seed.DOCKER_DEVICES_A2
        assert option_values(options, "-v")[:-1] == [f"{p}:{p}:ro" for p in seed.DOCKER_MOUNTS]
        assert option_values(options, "-e") == list(exports)


def test_a3_script_is_the_tutorials_single_node_script():
    result = render("a3", "--node", "a3-0")
    assert result.returncode == 0, result.stderr
    server, door = result.stdout.split("\n#!/bin/sh\n")
    exports, options, image, command = script_parts(server)
    assert exports == seed.fill(seed.SINGLE_NODE_ENV, local_ip="192.0.2.10", nic_name="eth0")
    assert command == seed.behind_the_front_door(seed.fill(seed.SINGLE_NODE_SERVE), "192.0.2.10")
    assert option_values(options, "--device") == seed.DOCKER_DEVICES_A3
    assert image == seed.IMAGE + "-a3"


def test_one_node_of_a_stack():
    result = render("a2", "--node", "a2-1")
    assert result.returncode == 0
    assert result.stdout.count("#!/bin/sh") == 1
    assert "# a2 / a2-1 (headless): data-parallel ranks 2-3 of 4" in result.stdout


def test_unknown_node_is_an_error():
    result = render("a2", "--node", "a2-9")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: no node 'a2-9' in Pulumi.a2.yaml; nodes are: a2-0, a2-1\n"


def test_missing_stack_file_is_an_error(tmp_path):
    result = render("nowhere", "--project-dir", str(tmp_path))
    assert (result.returncode, result.stderr) == (2, "error: no stack file Pulumi.nowhere.yaml\n")


def test_bad_stack_file_exits_non_zero_with_every_problem(tmp_path):
    (tmp_path / "Pulumi.bad.yaml").write_text(
        "config:\n"
        "  deepseek-r1-ascend:profile: atlas-800-a2\n"
        "  deepseek-r1-ascend:nodes:\n"
        "    - {name: a2-0, ip: 192.0.2.11, nic: eth0}\n"
        "    - {name: a2-1, ip: 192.0.2.11, nic: eth0, dockerHost: ssh://root@192.0.2.12}\n"
        "  deepseek-r1-ascend:image: {tag: latest}\n"
    )
    result = render("bad", "--project-dir", str(tmp_path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: Pulumi.bad.yaml: invalid configuration for deepseek-r1-ascend:\n"
        "  - image.tag: 'latest' moves between releases; pin a version tag such as v0.18.0\n"
        "  - nodes[1].ip: '192.0.2.11' is also nodes[0].ip; node addresses must be unique\n"
    )


def test_secrets_are_never_printed(tmp_path):
    (tmp_path / "Pulumi.s.yaml").write_text(
        (PROJECT_DIR / "Pulumi.a3.yaml").read_text()
        + "  deepseek-r1-ascend:apiKey:\n    secure: v1:AAAAencryptedAAAA\n"
    )
    result = render("s", "--project-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'export VLLM_API_KEY="${VLLM_API_KEY:?set VLLM_API_KEY in your environment first}"' in result.stdout
    assert "encrypted" not in result.stdout and "<secret>" not in result.stdout


def test_plain_text_secret_in_a_stack_file_is_refused(tmp_path):
    (tmp_path / "Pulumi.s.yaml").write_text(
        (PROJECT_DIR / "Pulumi.a3.yaml").read_text() + "  deepseek-r1-ascend:hfToken: hf_plain\n"
    )
    result = render("s", "--project-dir", str(tmp_path))
    assert result.returncode == 2
    assert "hfToken: stored in plain text; set it with `pulumi config set --secret hfToken <value>`" in result.stderr


def test_auto_nic_is_discovered_by_the_script(tmp_path):
    (tmp_path / "Pulumi.auto.yaml").write_text(
        "config:\n"
        "  deepseek-r1-ascend:profile: atlas-800-a3\n"
        "  deepseek-r1-ascend:nodes:\n"
        "    - {name: a3-0, ip: 127.0.0.1, nic: auto, dockerHost: 'unix:///var/run/docker.sock'}\n"
    )
    script = render("auto", "--project-dir", str(tmp_path)).stdout
    exports = script.split("docker create")[0]
    # Run the discovery and exports on this machine: loopback holds 127.0.0.1.
    result = subprocess.run(
        ["sh", "-c", exports + "echo $GLOO_SOCKET_IFNAME $TP_SOCKET_IFNAME $HCCL_SOCKET_IFNAME"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.split() == ["lo", "lo", "lo"]
    assert "export HCCL_IF_IP=127.0.0.1" in exports


def test_secret_environment_set_by_path_is_never_printed(tmp_path):
    (tmp_path / "Pulumi.s.yaml").write_text(
        (PROJECT_DIR / "Pulumi.a3.yaml").read_text()
        + "  deepseek-r1-ascend:env:\n    extra:\n      SITE_TOKEN:\n        secure: v1:AAAAencryptedAAAA\n"
    )
    result = render("s", "--project-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'export SITE_TOKEN="${SITE_TOKEN:?set SITE_TOKEN in your environment first}"' in result.stdout
    assert "encrypted" not in result.stdout


def _rendered_containers(text: str) -> list[tuple[str, str]]:
    """(name, the script's heading) of every container the dry run creates; names repeat across hosts."""
    found = []
    for script in text.split("#!/bin/sh\n")[1:]:
        argv = shlex.split(script.replace("\\\n", " ").split("\ndocker ", 1)[1].split("\n", 1)[0])
        found.append((argv[argv.index("--name") + 1], script.splitlines()[0]))
    return found


@pytest.mark.parametrize(
    ("stack", "observability"),
    [
        ("a2", None),
        ("a3", None),
        ("local", None),
        (
            "a2",
            {
                "enabled": True,
                "grafana": {"enabled": True},
                "npuExporter": {"image": "example.org/npu-exporter:v6.0.0"},
            },
        ),
    ],
)
def test_the_dry_run_shows_every_container_pulumi_up_would_run(tmp_path, stack, observability):
    raw = stack_settings(stack)
    if observability:
        raw["observability"] = observability
    stack_file = {f"{PROJECT}:{k}": v for k, v in raw.items()}
    if observability:
        stack_file[f"{PROJECT}:grafanaAdminPassword"] = {"secure": "v1:ciphertext"}
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": stack_file}))
    result = render(stack, "--project-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    if observability:
        raw["grafanaAdminPassword"] = "s3cret-admin"
    program = run_program(raw, stack=stack, secret_keys=("grafanaAdminPassword",) if observability else ())
    declared = sorted(c.inputs["name"] for c in program.of_type("docker:index/container:Container"))
    rendered = _rendered_containers(result.stdout)
    assert sorted(name for name, _ in rendered) == declared
    # Beyond the vllm servers: the front door; Prometheus, Grafana and an npu-exporter per node when configured.
    beyond = [heading.rsplit(": ", 1)[1] for _, heading in rendered if "data-parallel ranks" not in heading]
    observed = (["prometheus", "grafana"] + ["npu-exporter"] * len(raw["nodes"])) if observability else []
    assert sorted(beyond) == sorted(["front-door", *({"local": ["prometheus"]}.get(stack, observed))])


def test_the_smoke_test_output_keeps_the_key_off_curls_command_line(tmp_path):
    """`pulumi stack output smokeTest | sh`: the key reaches curl on its standard input."""
    stub(tmp_path / "curl", 'printf "%s\\n" "$@" > argv.txt\ncat > stdin.txt\n')
    raw = stack_settings("a2")
    raw["nodes"] = [
        {"name": "a2-0", "ip": "2001:db8::11", "nic": "eth0"},
        {"name": "a2-1", "ip": "2001:db8::12", "nic": "eth0"},
    ]
    raw["serve"] = {"host": "::"}
    plan = plan_cluster(load_config(raw), "a2")
    key = "sk-smoke-$(touch pwned)-`id`"
    done = subprocess.run(
        ["sh"],
        input=plan.smoke_curl(with_api_key=True) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "VLLM_API_KEY": key},
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert argv[:2] == ["-sS", "http://[2001:db8::11]:8080/v1/completions"] and "-H" in argv and "@-" in argv
    assert key not in "\n".join(argv)
    assert (tmp_path / "stdin.txt").read_text() == f"Authorization: Bearer {key}\n"
    assert not list(tmp_path.glob("pwned*"))
