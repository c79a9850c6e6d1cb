import subprocess

from speedrun._provenance import GitState, git_state


def git(folder, *args):
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip()


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
