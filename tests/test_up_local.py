"""scripts/up-local.sh, the quick start's second command, against stand-ins for `pulumi` and `make`."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from mocked import PROJECT_DIR

SCRIPT = PROJECT_DIR / "scripts" / "up-local.sh"


@pytest.fixture
def bin_dir(tmp_path) -> Path:
    """A PATH holding only what the script needs besides the stand-ins."""
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("dirname", "env"):
        (path / tool).symlink_to(shutil.which(tool))
    return path


def stand_in(bin_dir: Path, name: str, body: str = "") -> None:
    """A command that logs its arguments and the passphrase it was given, then runs `body`."""
    log = bin_dir.parent / "calls"
    (bin_dir / name).write_text(
        "#!/bin/sh\n"
        f'echo "{name} $* [passphrase=${{PULUMI_CONFIG_PASSPHRASE-unset}} file=${{PULUMI_CONFIG_PASSPHRASE_FILE-unset}}]" >> {log}\n'
        f"{body}\n"
    )
    (bin_dir / name).chmod(stat.S_IRWXU)


def up_local(bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent), **env}
    return subprocess.run(["/bin/sh", str(SCRIPT), *args], capture_output=True, text=True, env=environment, timeout=30)


def calls(bin_dir: Path) -> list[str]:
    log = bin_dir.parent / "calls"
    return log.read_text().splitlines() if log.exists() else []


def test_without_the_cli_it_stops_and_says_what_runs_instead(bin_dir):
    stand_in(bin_dir, "make")
    done = up_local(bin_dir)
    assert done.returncode == 127
    assert "the Pulumi CLI is not installed" in done.stderr and "'make test'" in done.stderr
    assert calls(bin_dir) == []


def test_from_a_fresh_clone_it_logs_in_locally_and_deploys_the_local_stack(bin_dir):
    stand_in(bin_dir, "make")
    stand_in(bin_dir, "pulumi", '[ "$1" = whoami ] && exit 1; exit 0')
    done = up_local(bin_dir, "--yes", PULUMI_CONFIG_PASSPHRASE="for-production", PULUMI_CONFIG_PASSPHRASE_FILE="/p")
    assert done.returncode == 0, done.stderr
    others = "[passphrase=for-production file=/p]"
    assert calls(bin_dir) == [
        f"make local-hosts {others}",
        f"pulumi whoami --non-interactive {others}",
        f"pulumi login --local {others}",
        "pulumi stack select --create --non-interactive local [passphrase= file=unset]",
        "pulumi up --stack local --yes [passphrase= file=unset]",
    ]


def test_a_backend_already_chosen_is_kept(bin_dir):
    stand_in(bin_dir, "make")
    stand_in(bin_dir, "pulumi")
    assert up_local(bin_dir).returncode == 0
    assert [call.split(" [")[0] for call in calls(bin_dir)] == [
        "make local-hosts",
        "pulumi whoami --non-interactive",
        "pulumi stack select --create --non-interactive local",
        "pulumi up --stack local",
    ]


def test_a_failing_step_stops_it(bin_dir):
    stand_in(bin_dir, "make", "exit 2")
    stand_in(bin_dir, "pulumi")
    assert up_local(bin_dir).returncode == 2
    assert [call.split(" ")[0] for call in calls(bin_dir)] == ["make"]


def test_the_script_is_executable():
    assert os.access(SCRIPT, os.X_OK)
