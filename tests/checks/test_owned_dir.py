"""The owned-dir step, run for real under /bin/sh in a temporary directory: it creates the directory
and hands it over, passes again on a rerun, finishes an interrupted run, and refuses to hand over
anything it did not create (a foreign directory, an empty one, a link, a file)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from checks.steps import OWNED_DIR_MARKER, STEPS, StepFailed, node_script

OWNER = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to uid 65534 needs root")


def step(path: Path, owner: int = OWNER) -> dict:
    """The step's verdict, as `pulumi up` reads it, after running its script on this machine."""
    spec = {"node": "n0", "path": str(path), "owner": owner}
    result = subprocess.run(["/bin/sh", "-c", node_script("owned-dir", spec)], capture_output=True, text=True)
    assert result.stderr == "", result  # everything it says reaches the judge
    return STEPS["owned-dir"].judge(spec, {"n0": result.stdout})


def refusal(path: Path) -> str:
    with pytest.raises(StepFailed) as failed:
        step(path)
    return str(failed.value)


def owner(path: Path) -> tuple[int, int]:
    stat = path.lstat()
    return stat.st_uid, stat.st_gid


def way_forward(path: Path) -> str:
    return (
        "this step only hands over a directory it creates itself: name a path that does not exist yet, or, if "
        f"this directory is meant for it, run `chown 65534:65534 {path}` on the node yourself; run `pulumi up` "
        "again once fixed"
    )


@as_root
def test_a_fresh_directory_is_created_with_its_parents_and_handed_over(tmp_path):
    data = tmp_path / "var" / "lib" / "deepseek-r1-ascend" / "prometheus"
    assert step(data) == {"path": str(data)}
    assert data.is_dir() and owner(data) == (OWNER, OWNER)
    # Only the directory itself: its parents stay root's, and the marker says who made it.
    assert owner(data.parent) == (0, 0)
    assert [p.name for p in data.iterdir()] == [OWNED_DIR_MARKER]
    assert owner(data / OWNED_DIR_MARKER) == (0, 0)


@as_root
def test_a_rerun_passes_and_changes_nothing(tmp_path):
    data = tmp_path / "prometheus"
    step(data)
    (data / "wal").mkdir()  # Prometheus has written since
    os.chown(data / "wal", OWNER, OWNER)
    assert step(data) == {"path": str(data)}
    assert step(data) == {"path": str(data)}
    assert owner(data) == (OWNER, OWNER) and sorted(p.name for p in data.iterdir()) == [OWNED_DIR_MARKER, "wal"]


@as_root
def test_a_run_interrupted_before_the_chown_is_finished(tmp_path):
    data = tmp_path / "prometheus"
    data.mkdir()
    (data / OWNED_DIR_MARKER).write_text("created by the step\n")
    assert step(data) == {"path": str(data)}
    assert owner(data) == (OWNER, OWNER)


@as_root
def test_a_directory_already_the_owners_passes_untouched(tmp_path):
    # One a site prepared itself, or one an earlier version of the step created and handed over.
    data = tmp_path / "prometheus"
    data.mkdir()
    (data / "chunks_head").mkdir()
    os.chown(data, OWNER, 0)
    assert step(data) == {"path": str(data)}
    assert owner(data) == (OWNER, 0)


def test_an_existing_directory_it_did_not_create_is_refused(tmp_path):
    # As /etc would be: someone else's, with files in it.
    foreign = tmp_path / "etc"
    foreign.mkdir()
    (foreign / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    before = owner(foreign)
    assert refusal(foreign) == (
        f"node n0: will not make {foreign} uid 65534's: it already exists, owned by uid {before[0]}, and this "
        f"step did not create it; {way_forward(foreign)}"
    )
    assert owner(foreign) == before and (foreign / "passwd").exists()


def test_an_empty_directory_without_the_marker_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "it already exists, owned by uid" in refusal(empty)
    assert owner(empty) == (os.geteuid(), os.getegid())


def test_a_marker_beside_other_files_is_not_enough(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / OWNED_DIR_MARKER).write_text("")
    (data / "keep").write_text("")
    assert "and this step did not create it" in refusal(data)
    assert owner(data) == (os.geteuid(), os.getegid())


def test_a_symbolic_link_is_refused_and_its_target_left_alone(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    assert refusal(link) == f"node n0: will not make {link} uid 65534's: it is a symbolic link; {way_forward(link)}"
    assert owner(target) == (os.geteuid(), os.getegid())
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert "it is a symbolic link" in refusal(dangling)
    assert not (tmp_path / "nowhere").exists()


def test_a_file_is_refused(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    assert refusal(file) == (
        f"node n0: will not make {file} uid 65534's: it exists and is not a directory; {way_forward(file)}"
    )


def test_a_path_with_spaces_and_quotes_is_one_argument(tmp_path):
    odd = tmp_path / "it's a dir"
    odd.mkdir()
    (odd / "x").write_text("")
    message = refusal(odd)
    assert "run `chown 65534:65534 " + "'" + str(odd).replace("'", "'\"'\"'") + "'` on the node" in message


def test_a_failure_to_create_is_reported_with_what_the_node_said(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")  # a file where a parent directory should be
    with pytest.raises(StepFailed) as failed:
        step(blocker / "prometheus")
    assert str(failed.value).startswith(f"node n0: cannot create {blocker}/prometheus owned by 65534: mkdir: ")
    assert str(failed.value).endswith("; run `pulumi up` again once fixed")
