"""No credential on any command line: every step, run as `python -m checks` runs it, with stub
tools that record their argv. Every local user of a node (and of the deploying machine) reads
every process's argv with `ps`, for as long as it runs (readiness: up to an hour)."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from hoststubs import stub
from mocked import run_program, stack_settings

from checks import __main__ as runner
from checks.steps import NODE_SSH_ENV, SSH_KEY_ENV, STEPS
from components.nodecommand import step_command
from core.config import SECRET_ENV

# One canary per secret a step may carry, and the SSH key the runner logs in with.
CANARIES = {
    "VLLM_API_KEY": "sk-canary-api-key-5d1e",
    "HF_TOKEN": "hf_canary_token_77aa",
    "MODELSCOPE_API_TOKEN": "ms-canary-token-90bc",
}
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ncanary-ssh-key-3f2e\n-----END OPENSSH PRIVATE KEY-----\n"
SECRETS = {"apiKey": "sk-canary-api-key-5d1e", "hfToken": "hf_canary_token_77aa"}
SECRETS |= {"modelscopeToken": "ms-canary-token-90bc", "sshPrivateKey": SSH_KEY, "grafanaAdminPassword": "pw-canary"}
assert set(SECRET_ENV.values()) == set(CANARIES)

# Every tool a step's script may start, each recording its argv, then doing what it would.
ANSWERS = {
    # Readiness: /health is 200 and /v1/models lists the model; smoke: a completion and status.
    "curl": 'cat >/dev/null 2>&1 || true\necho \'{"data": [{"id": "deepseek_r1"}], "choices": [{"text": "x"}]}\'\n'
    'echo "200 0.5"',
    "wget": "echo ok",
    "docker": "cat >/dev/null 2>&1 || true\necho 28.2.2",
    "sleep": "true",
    "chown": "true",
    "mkdir": "true",
    "npu-smi": "echo 'npu-smi 24.1.rc2'",
    "hccn_tool": "echo 'link status: UP'",
    "ping": "true",
    "ip": "echo '2: eth0    inet 192.0.2.11/24 scope global eth0'",
}
DELEGATED = ("grep", "awk", "sed", "cat", "date", "df", "ls", "head", "tail", "tr", "env", "printf", "echo")
# Stands in for OpenSSH: records its argv, then runs the remote command here as sshd would.
SSH = r"""
printf '%s\n' ssh "$@" "--end--" >> "$ARGV_LOG"
while [ "$1" != "--" ]; do shift; done
shift 2
exec /bin/sh -c "$1"
"""


def program_steps() -> dict[str, dict]:
    """One spec per step, as the program declares it for a stack that runs every step."""
    raw = stack_settings("a2") | SECRETS
    raw |= {
        "benchmark": {"enabled": True},
        "accuracy": {"enabled": True, "tokenizer": "/root/.cache/tokenizer"},
        "serve": {"maxModelLen": 35000},
        "weights": {"stage": True},
        "observability": {"enabled": True},
    }
    grouped = stack_settings("a2-groups") | SECRETS
    disaggregated = stack_settings("a3-pd") | SECRETS
    specs: dict[str, dict] = {}
    for settings, stack in ((raw, "a2"), (grouped, "a2-groups"), (disaggregated, "a3-pd")):
        deployment = run_program(settings, stack=stack, secret_keys=tuple(SECRETS))
        assert deployment.error is None and not deployment.failed
        for resource in deployment.of_type("command:local:Command"):
            for command in (resource.inputs["create"], resource.inputs.get("delete")):
                for canary in (*CANARIES.values(), SSH_KEY, "canary-ssh-key"):
                    assert canary not in (command or ""), resource.name
                if command:
                    argv = shlex.split(command)
                    specs.setdefault(argv[3], json.loads(argv[4]))
    return specs


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Stub tools first on PATH, each appending its argv to one log."""
    bin_dir, log = tmp_path / "bin", tmp_path / "argv.log"
    bin_dir.mkdir()
    record = 'printf \'%s\\n\' "$0" "$@" "--end--" >> "$ARGV_LOG"\n'
    for name, answer in ANSWERS.items():
        stub(bin_dir / name, record + answer + "\n")
    for name in DELEGATED:
        real = shutil.which(name)
        if real:
            stub(bin_dir / name, record + f'exec {shlex.quote(real)} "$@"\n')
    stub(bin_dir / "ssh", SSH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ARGV_LOG", str(log))
    monkeypatch.setenv(SSH_KEY_ENV, SSH_KEY)
    return log


def run_step(step: str, spec: dict, nodes: list[str], monkeypatch) -> None:
    """`python -m checks <step> <spec>` in this process: over ssh to every node of the spec, with
    every secret on its standard input."""
    spec = {**spec, "secrets": sorted(CANARIES)} if spec["nodes"] else spec
    connection = {"host": "192.0.2.11", "user": "root", "port": 22, "hostKey": "ssh-ed25519 AAAAK", "opts": []}
    monkeypatch.setenv(NODE_SSH_ENV, json.dumps({n: connection for n in nodes}))
    stdin = "".join(f"{CANARIES[name]}\n" for name in sorted(CANARIES))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    # The command line of the step itself, as the resource runs it.
    create = step_command(step, spec)
    for canary in (*CANARIES.values(), SSH_KEY):
        assert canary not in create
    runner.main([step, json.dumps(spec)])


def recorded(log: Path) -> list[list[str]]:
    calls, current = [], []
    for line in log.read_text().splitlines() if log.exists() else []:
        if line == "--end--":
            calls.append(current)
            current = []
        else:
            current.append(line)
    return calls


def test_the_program_declares_every_step():
    assert set(program_steps()) == set(STEPS)


def test_no_step_puts_a_secret_on_any_command_line(tools, monkeypatch, capsys):
    specs = program_steps()
    ran_secrets = set()
    for step, spec in sorted(specs.items()):
        run_step(step, spec, spec["nodes"], monkeypatch)
        if spec["nodes"]:
            ran_secrets.add(step)
    capsys.readouterr()
    calls = recorded(tools)
    started = {Path(call[0]).name for call in calls}
    # The steps that use them started them: the API over curl, Docker, and every node over ssh.
    assert {"ssh", "curl", "docker"} <= started
    assert {"readiness", "smoke-test", "benchmark", "accuracy", "stage-weights"} <= ran_secrets
    for call in calls:
        text = "\n".join(call)
        for name, canary in CANARIES.items():
            assert canary not in text, (name, call)
        assert "canary-ssh-key" not in text, call
        assert "pw-canary" not in text, call


def test_the_api_key_reaches_curl_on_its_standard_input(tools, tmp_path, monkeypatch, capsys):
    # The stub curl saves what it reads: the header the real curl reads with `-H @-`.
    answer = 'cat >> "$ARGV_LOG.stdin"\necho \'{"data": [{"id": "deepseek_r1"}]}\'\n'
    stub(tmp_path / "bin" / "curl", 'printf \'%s\\n\' "$0" "$@" "--end--" >> "$ARGV_LOG"\n' + answer)
    specs = program_steps()
    run_step("readiness", specs["readiness"], specs["readiness"]["nodes"], monkeypatch)
    capsys.readouterr()
    curls = [call for call in recorded(tools) if Path(call[0]).name == "curl"]
    assert curls and all("@-" in call for call in curls)
    stdin = Path(f"{tools}.stdin").read_text()
    assert stdin.splitlines()[0] == f"Authorization: Bearer {CANARIES['VLLM_API_KEY']}"
