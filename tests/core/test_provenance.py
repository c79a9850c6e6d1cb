import socket
import subprocess
import sys

from speedrun.experiment._provenance import (
    GitState,
    git_diff,
    git_state,
    host_name,
    python_version,
    recent_git_state,
    speedrun_distributions,
)


def git(folder, *args):
    return subprocess.run(
        ["git", *args], cwd=folder, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_outside_a_repository(tmp_path):
    assert git_state(str(tmp_path)) == GitState(None, None, None)


def test_revision_branch_and_dirty_state(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    assert git_state(str(tmp_path)) == GitState(None, "main", False)  # no commit yet
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_state(str(tmp_path)) == GitState(head, "main", False)
    (tmp_path / "untracked.txt").write_text("not part of the code")
    assert git_state(str(tmp_path)).dirty is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(str(tmp_path)) == GitState(head, "main", True)
    git(tmp_path, "checkout", "-q", "--detach")
    assert git_state(str(tmp_path)).branch is None


def commit(folder, message="one"):
    git(folder, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", message)


def test_recent_git_state_reuses_an_answer_of_the_last_seconds(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    commit(tmp_path)
    clean = git_state(str(tmp_path))
    (tmp_path / "a.py").write_text("x = 2\n")
    # The same question right after (as auto_setup asks it twice) costs no second git call...
    assert recent_git_state(str(tmp_path)) is clean
    # ...while git_state always asks git, and refreshes what recent_git_state returns.
    dirty = git_state(str(tmp_path))
    assert dirty.dirty is True
    assert recent_git_state(str(tmp_path)) is dirty
    other = tmp_path / "other"
    other.mkdir()
    assert recent_git_state(str(other)) == GitState(dirty.revision, "main", True)


def test_git_diff_is_a_patch_that_reapplies(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "data.bin").write_bytes(bytes(range(256)))
    git(tmp_path, "add", "a.py", "data.bin")
    commit(tmp_path)
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_diff(str(tmp_path), revision=head) == ""
    (tmp_path / "a.py").write_text("x = 2\n")
    (tmp_path / "data.bin").write_bytes(bytes(reversed(range(256))))
    (tmp_path / "staged.py").write_text("y = 1\n")
    git(tmp_path, "add", "staged.py")
    (tmp_path / "untracked.py").write_text("not included\n")
    patch = git_diff(str(tmp_path), revision=head)
    assert "+x = 2" in patch and "staged.py" in patch and "untracked.py" not in patch
    assert "GIT binary patch" in patch
    (tmp_path / "change.patch").write_text(patch)
    # On a clean checkout of the revision, the patch recreates the working tree exactly.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tmp_path), str(clone))
    git(clone, "apply", "--index", str(tmp_path / "change.patch"))
    assert (clone / "a.py").read_text() == "x = 2\n"
    assert (clone / "data.bin").read_bytes() == bytes(reversed(range(256)))
    assert (clone / "staged.py").read_text() == "y = 1\n"


def test_git_diff_without_a_commit_or_a_repository(tmp_path):
    assert git_diff(str(tmp_path), revision=None) is None
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    assert "+x = 1" in git_diff(str(tmp_path), revision=None)


def test_python_version_and_host():
    assert python_version().startswith(".".join(map(str, sys.version_info[:3])))
    assert host_name() == socket.gethostname()


def test_speedrun_distributions_from_folder_names(tmp_path):
    import speedrun

    assert speedrun_distributions()["speedrun-core"] == speedrun.__version__
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "speedrun_tensorboard-0.2.0.dist-info").mkdir(parents=True)
    (first / "speedrun_io-1.0.0rc1.dist-info").mkdir()
    (first / "requests-2.0.dist-info").mkdir()
    (second / "speedrun_tensorboard-0.1.0.dist-info").mkdir(parents=True)
    egg = second / "speedrun_waiter.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text(
        "Metadata-Version: 2.1\nName: speedrun-waiter\nVersion: 0.3.1\n\nlong description\n"
    )
    assert speedrun_distributions([str(first), str(second), str(tmp_path / "missing")]) == {
        "speedrun-io": "1.0.0rc1",
        "speedrun-tensorboard": "0.2.0",
        "speedrun-waiter": "0.3.1",
    }


def test_prefetched_state_is_the_same_answer(tmp_path):
    from speedrun.experiment import _provenance

    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "one")
    _provenance.prefetch_git_state(str(tmp_path))
    assert str(tmp_path) in _provenance._pending
    prefetched = _provenance.git_state(str(tmp_path))
    assert str(tmp_path) not in _provenance._pending
    assert prefetched == _provenance.git_state(str(tmp_path))
    assert prefetched.revision == git(tmp_path, "rev-parse", "HEAD")
