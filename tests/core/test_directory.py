"""Tests of speedrun.directory._layout: layout, marker, and the refusals of the safe purge."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import speedrun.directory._layout as directory_module
from speedrun._errors import ExperimentDirectoryError
from speedrun.directory._layout import (
    MARKER_NAME,
    SUBDIRECTORIES,
    is_experiment_directory,
    prepare_experiment_directory,
    read_marker,
)
from speedrun.directory._lock import WriterLock
from speedrun.directory._purge import purge_experiment_directory

_SOURCE_ROOT = str(Path(directory_module.__file__).resolve().parents[1])


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (not following links): type, mode, and bytes or link target."""
    result: dict[str, tuple] = {".": ("dir", stat.S_IMODE(os.lstat(root).st_mode))}
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(folder) / name
            info = os.lstat(path)
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                result[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                result[key] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                result[key] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return result


def make_experiment(path: Path) -> Path:
    """A marked experiment directory with some outputs in it."""
    prepare_experiment_directory(path)
    (path / "Configurations" / "train_config.yml").write_text("training:\n  lr: 0.01\n")
    (path / "Weights" / "checkpoint_iter_10.pt").write_bytes(os.urandom(256))
    (path / "Logs" / "events.out").write_bytes(b"\x00\x01log")
    return path


def assert_refused(path: Path, *fragments: str) -> ExperimentDirectoryError:
    before = snapshot(path)
    with pytest.raises(ExperimentDirectoryError) as caught:
        purge_experiment_directory(path)
    message = str(caught.value)
    assert "Refusing to purge" in message and str(path) in message
    assert "Fix:" in message
    for fragment in fragments:
        assert fragment in message, message
    assert snapshot(path) == before
    assert not [p for p in path.parent.iterdir() if ".purging-" in p.name]
    return caught.value


# --------------------------------------------------------------------------- prepare


def test_prepare_creates_layout_and_marker(tmp_path: Path) -> None:
    path = tmp_path / "experiments" / "RUN-0"  # Parents are created too.
    result = prepare_experiment_directory(str(path))
    assert result == path
    assert sorted(os.listdir(path)) == sorted([MARKER_NAME, *SUBDIRECTORIES])
    assert all((path / name).is_dir() for name in SUBDIRECTORIES)
    marker = json.loads((path / MARKER_NAME).read_text())
    assert marker["marker_version"] == directory_module.MARKER_VERSION
    assert marker["host"] == socket.gethostname()
    assert "T" in marker["created"]
    assert "adopted" not in marker
    assert is_experiment_directory(path)
    assert read_marker(path) == marker
    # Written atomically: no temp files left behind.
    assert not [name for name in os.listdir(path) if name.endswith(".tmp")]


def test_prepare_marks_an_empty_folder(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    path.mkdir()
    prepare_experiment_directory(path)
    assert is_experiment_directory(path)
    assert all((path / name).is_dir() for name in SUBDIRECTORIES)


def test_prepare_accepts_a_folder_holding_only_its_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    path.mkdir()
    WriterLock(path).acquire().release()
    prepare_experiment_directory(path)
    assert is_experiment_directory(path)


def test_prepare_is_idempotent_and_keeps_the_marker(tmp_path: Path) -> None:
    path = make_experiment(tmp_path / "RUN-0")
    marker_before = (path / MARKER_NAME).read_bytes()
    inode_before = os.stat(path / MARKER_NAME).st_ino
    shutil.rmtree(path / "Plots")  # A missing subfolder is recreated.
    prepare_experiment_directory(path)
    assert (path / MARKER_NAME).read_bytes() == marker_before
    assert os.stat(path / MARKER_NAME).st_ino == inode_before  # Not rewritten.
    assert (path / "Plots").is_dir()
    assert (path / "Configurations" / "train_config.yml").read_text() == "training:\n  lr: 0.01\n"


def test_prepare_adopts_a_legacy_folder(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    (path / "Configurations").mkdir(parents=True)
    (path / "Configurations" / "train_config.yml").write_text("a: 1\n")
    (path / "notes.txt").write_text("my notes")  # The original speedrun allowed anything else.
    prepare_experiment_directory(path)
    assert is_experiment_directory(path)
    assert read_marker(path)["adopted"] is True  # type: ignore[index]  # the marker exists here
    assert (path / "Configurations" / "train_config.yml").read_text() == "a: 1\n"
    assert (path / "notes.txt").read_text() == "my notes"
    assert all((path / name).is_dir() for name in SUBDIRECTORIES)


def test_prepare_refuses_a_foreign_folder_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "project"
    path.mkdir()
    for index in range(8):
        (path / f"file_{index}.py").write_text(f"print({index})")
    (path / "Logs").mkdir()  # A look-alike subfolder is not enough.
    before = snapshot(path)
    with pytest.raises(ExperimentDirectoryError) as caught:
        prepare_experiment_directory(path)
    message = str(caught.value)
    assert "is not a speedrun experiment directory" in message
    assert "'Logs', 'file_0.py'" in message and "(and 4 more)" in message
    assert "pick a new path" in message
    assert snapshot(path) == before


def test_prepare_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    path.write_text("not a folder")
    with pytest.raises(ExperimentDirectoryError, match="existing file.*pick a new path"):
        prepare_experiment_directory(path)
    assert path.read_text() == "not a folder"


def test_prepare_below_a_file_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(ExperimentDirectoryError, match="Cannot create the experiment directory"):
        prepare_experiment_directory(tmp_path / "blocker" / "RUN-0")
    assert (tmp_path / "blocker").read_text() == "x"


def test_prepare_follows_a_symlink_to_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "scratch" / "RUN-0"
    target.mkdir(parents=True)
    link = tmp_path / "RUN-0"
    link.symlink_to(target)
    prepare_experiment_directory(link)
    assert is_experiment_directory(target)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ExperimentDirectoryError, match="does not exist"):
        prepare_experiment_directory(dangling)
    assert not (tmp_path / "nowhere").exists()


def test_invalid_markers_do_not_count(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    path.mkdir()
    assert not is_experiment_directory(path)
    assert not is_experiment_directory(tmp_path / "missing")
    (path / MARKER_NAME).write_text("")
    assert not is_experiment_directory(path)
    (path / MARKER_NAME).write_text("[1, 2]")
    assert not is_experiment_directory(path)
    (path / MARKER_NAME).unlink()
    real_marker = tmp_path / "elsewhere"
    real_marker.write_text(json.dumps({"marker_version": 1}))
    (path / MARKER_NAME).symlink_to(real_marker)
    assert not is_experiment_directory(path)


# --------------------------------------------------------------------------- purge: accepted


def test_purge_deletes_a_marked_directory_without_leftovers(tmp_path: Path) -> None:
    path = make_experiment(tmp_path / "experiments" / "RUN-0")
    (path / "Weights" / "extra.bin").write_bytes(b"x" * 1000)
    (path / "anything_else.txt").write_text("marked folders may hold anything")
    WriterLock(path).acquire().release()
    purge_experiment_directory(path)
    assert not path.exists()
    assert os.listdir(tmp_path / "experiments") == []


def test_purge_deletes_a_clean_legacy_directory(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    for name in SUBDIRECTORIES:
        (path / name).mkdir(parents=True)
    (path / "Configurations" / "train_config.yml").write_text("a: 1\n")
    (path / "Weights" / "checkpoint.pt").write_bytes(b"weights")
    purge_experiment_directory(path)
    assert not path.exists()


def test_purge_deletes_an_empty_folder(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    path.mkdir()
    purge_experiment_directory(path)
    assert not path.exists()


def test_purge_of_a_missing_path_is_a_no_op(tmp_path: Path) -> None:
    purge_experiment_directory(tmp_path / "missing")
    assert os.listdir(tmp_path) == []


def test_prepare_after_purge_starts_fresh(tmp_path: Path) -> None:
    path = make_experiment(tmp_path / "RUN-0")
    purge_experiment_directory(path)
    prepare_experiment_directory(path)
    # Only the (hidden) record of the checkpoints this run writes, still empty.
    assert [p.name for p in (path / "Weights").iterdir()] == [".speedrun-checkpoints.json"]


# --------------------------------------------------------------------------- purge: refused


def test_purge_refuses_an_unmarked_folder_with_other_content(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.mkdir()
    (path / "dataset.h5").write_bytes(b"\x89HDF" + os.urandom(64))
    (path / "Configurations").mkdir()
    assert_refused(
        path, "not a speedrun experiment directory", "'dataset.h5'", "delete it yourself"
    )


def test_purge_refuses_a_legacy_folder_with_extra_entries(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    for name in SUBDIRECTORIES:
        (path / name).mkdir(parents=True)
    (path / "train.py").write_text("import torch")
    assert_refused(path, "'train.py'")


def test_purge_refuses_lookalike_subfolders_without_configurations(tmp_path: Path) -> None:
    path = tmp_path / "tool_output"
    (path / "Logs").mkdir(parents=True)
    (path / "Logs" / "server.log").write_text("important")
    assert_refused(path, "Configurations/")


def test_purge_refuses_a_file_named_like_a_subfolder(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    (path / "Configurations").mkdir(parents=True)
    (path / "Weights").write_bytes(b"a file, not a folder")
    assert_refused(path, "'Weights'")


def test_purge_refuses_a_git_repository(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "train.py").write_text("print('hi')\n")
    (path / "Configurations").mkdir()
    assert_refused(path, "'.git'", "not a speedrun experiment directory")


def test_purge_refuses_the_home_folder_even_when_marked(tmp_path: Path, monkeypatch) -> None:
    home = make_experiment(tmp_path / "home" / "alice")
    monkeypatch.setenv("HOME", str(home))
    assert_refused(home, "your home folder")
    assert_refused(home.parent, "a parent of your home folder")
    # A run below the home folder is fine.
    run = make_experiment(home / "experiments" / "RUN-0")
    purge_experiment_directory(run)
    assert not run.exists()


def test_purge_refuses_the_working_directory_and_its_parents(tmp_path: Path, monkeypatch) -> None:
    path = make_experiment(tmp_path / "RUN-0")
    monkeypatch.chdir(path)
    assert_refused(path, "the current working directory", "change to another working directory")
    assert_refused(Path("."), "the current working directory")
    monkeypatch.chdir(path / "Logs")
    assert_refused(path, "a parent of the current working directory")
    assert_refused(Path(".."), "a parent of the current working directory")


def test_purge_refuses_the_root() -> None:
    with pytest.raises(ExperimentDirectoryError, match="file system root"):
        purge_experiment_directory("/")
    assert os.path.isdir("/tmp")


def test_purge_refuses_a_symlink_and_leaves_link_and_target(tmp_path: Path) -> None:
    target = make_experiment(tmp_path / "real_run")
    link = tmp_path / "RUN-0"
    link.symlink_to(target)
    before = snapshot(target)
    with pytest.raises(ExperimentDirectoryError, match="symbolic link") as caught:
        purge_experiment_directory(link)
    assert "rm " in str(caught.value)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert snapshot(target) == before
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ExperimentDirectoryError, match="symbolic link"):
        purge_experiment_directory(dangling)
    assert dangling.is_symlink()


def test_purge_refuses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "RUN-0"
    path.write_bytes(b"precious")
    with pytest.raises(ExperimentDirectoryError, match="it is a file"):
        purge_experiment_directory(path)
    assert path.read_bytes() == b"precious"


def test_purge_refuses_a_directory_locked_by_another_process(tmp_path: Path) -> None:
    path = make_experiment(tmp_path / "RUN-0")
    script = textwrap.dedent(
        """
        import sys
        from speedrun.directory._lock import WriterLock
        lock = WriterLock(sys.argv[1]).acquire()
        print("locked", flush=True)
        sys.stdin.readline()
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE_ROOT, env.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout.readline().strip() == "locked"  # type: ignore[union-attr]  # the pipe is opened with PIPE
        holder = f"process {child.pid} on host {socket.gethostname()}"
        assert_refused(path, holder, "wait for that run")
    finally:
        child.communicate(input="\n", timeout=30)
    purge_experiment_directory(path)  # Once the run is over, the purge goes through.
    assert not path.exists()


def test_purge_refuses_a_directory_locked_by_this_process(tmp_path: Path) -> None:
    path = make_experiment(tmp_path / "RUN-0")
    lock = WriterLock(path).acquire()
    # The snapshot includes the lock file's note: the refused purge must not touch it either.
    assert_refused(path, "this process holds its writer lock", "release the WriterLock")
    lock.release()
    purge_experiment_directory(path)
    assert not path.exists()


# --------------------------------------------------------------------------- interrupted purge


def test_interrupted_purge_leaves_no_half_deleted_experiment(tmp_path: Path, monkeypatch) -> None:
    path = make_experiment(tmp_path / "RUN-0")
    real_rmtree = shutil.rmtree

    def interrupted_rmtree(target, *args, **kwargs):
        # Delete part of the tree, then die as a Ctrl-C would.
        real_rmtree(Path(target) / "Weights")
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt):
        purge_experiment_directory(path)
    monkeypatch.undo()

    assert not path.exists()  # The half-deleted tree is not at the experiment's path.
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers == [f".RUN-0.purging-{os.getpid()}"]
    # A new run at the same path starts from scratch.
    prepare_experiment_directory(path)
    assert list((path / "Configurations").iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_failed_delete_names_the_hidden_leftover(tmp_path: Path) -> None:
    path = make_experiment(tmp_path / "RUN-0")
    (path / "Weights").chmod(0o500)  # The file inside cannot be deleted.
    try:
        expected = "could not be deleted completely"
        with pytest.raises(ExperimentDirectoryError, match=expected) as caught:
            purge_experiment_directory(path)
        hidden = tmp_path / f".RUN-0.purging-{os.getpid()}"
        assert str(hidden) in str(caught.value)
        assert not path.exists()
    finally:
        for folder in tmp_path.glob(".RUN-0.purging-*/Weights"):
            folder.chmod(0o700)
