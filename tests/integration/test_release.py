"""Versions, changelogs and the release record (scripts/release.py), on real files and git.

The build, install and lowest-core steps run in `.ci/run` (``hatch run release:check``); here are
the rules every distribution must follow and the bookkeeping that `bump`, `record` and the
changelog check do, tried on throwaway copies and throwaway git repositories.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_release():
    spec = importlib.util.spec_from_file_location(
        "speedrun_release_script", ROOT / "scripts" / "release.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


release = _load_release()
DISTRIBUTIONS = release.discover()


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=[d.name for d in DISTRIBUTIONS])
def test_version_comes_from_one_source_and_matches_the_installed_metadata(dist):
    module = importlib.import_module(dist.module)
    try:
        installed = metadata.version(dist.name)
    except metadata.PackageNotFoundError:
        pytest.fail(
            f"{dist.name} is not installed in this environment ({sys.executable})", pytrace=False
        )
    assert getattr(module, "__version__", None) == installed, (
        f"{dist.module}.__version__ is {getattr(module, '__version__', None)!r} but the installed metadata of "
        f"{dist.name} says {installed!r}. Every distribution defines __version__ from its one version "
        "source; if you just bumped it, reinstall (pip install -e packages/...)."
    )
    assert dist.version == installed, (
        f"{dist.name}: the source says {dist.version}, the metadata {installed}"
    )


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=[d.name for d in DISTRIBUTIONS])
def test_every_changelog_keeps_an_unreleased_section(dist):
    release.unreleased_entries(dist)  # raises with the fix when the section is missing
    headings = [
        heading
        for heading, _ in release.changelog_sections(dist.changelog.read_text(encoding="utf-8"))
    ]
    assert headings[0] == release.UNRELEASED, (
        f"{dist.changelog}: '## Unreleased' must come first, found {headings}"
    )
    assert any(h.split(" ", 1)[0] == dist.version for h in headings[1:]), (
        f"{dist.changelog} has no section for the current version {dist.version}: {headings}"
    )


def test_every_mixin_allows_the_current_core_and_a_recorded_core():
    core = release.find(release.CORE, DISTRIBUTIONS)
    releases = release.released_versions(core)
    for dist in DISTRIBUTIONS:
        if dist.is_core:
            continue
        lowest = release.lowest_version(dist, core, releases)
        assert lowest in releases or lowest == core.version, (dist.name, lowest, releases)


# ---------------------------------------------------------------------------
# bump and the changelog, on a copy of a distribution
# ---------------------------------------------------------------------------

DEMO_PYPROJECT = """\
[project]
name = "speedrun-demo"
dynamic = ["version"]
dependencies = ["speedrun-core>=0.2,<0.3"]

[tool.hatch.version]
path = "src/speedrun/mixins/demo/__init__.py"
"""

DEMO_CHANGELOG = """\
# Changelog of speedrun-demo

## Unreleased

- Something new.

## 0.1.0 (2026-01-01)

- First.
"""


def _demo(root: Path, version: str = "0.1.0") -> Path:
    folder = root / "packages" / "speedrun-demo"
    (folder / "src" / "speedrun" / "mixins" / "demo").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(DEMO_PYPROJECT)
    (folder / "CHANGELOG.md").write_text(DEMO_CHANGELOG)
    (folder / "src" / "speedrun" / "mixins" / "demo" / "__init__.py").write_text(
        f'"""Demo."""\n\n__version__ = "{version}"\n'
    )
    return folder


def test_bump_sets_the_one_version_source_and_releases_the_changelog_section(tmp_path):
    folder = _demo(tmp_path)
    (dist,) = release.discover(tmp_path / "packages")
    assert (dist.short, dist.version, dist.module) == ("demo", "0.1.0", "speedrun.mixins.demo")
    version = release.next_version(dist.version, "minor")
    release.release_changelog(dist, version, "2026-12-04")
    dist.set_version(version)

    (dist,) = release.discover(tmp_path / "packages")
    assert dist.version == "0.2.0"
    assert '__version__ = "0.2.0"' in (folder / "src/speedrun/mixins/demo/__init__.py").read_text()
    sections = release.changelog_sections((folder / "CHANGELOG.md").read_text())
    assert sections == [
        ("Unreleased", ""),
        ("0.2.0 (2026-12-04)", "- Something new."),
        ("0.1.0 (2026-01-01)", "- First."),
    ]
    # nothing left to release: a second bump refuses
    with pytest.raises(release.ReleaseError, match="nothing to release"):
        release.release_changelog(dist, "0.3.0", "2026-12-05")


@pytest.mark.parametrize(
    ("current", "part", "expected"),
    [
        ("0.2.0", "patch", "0.2.1"),
        ("0.2.3", "minor", "0.3.0"),
        ("0.2.3", "major", "1.0.0"),
        ("0.2.3", "0.4.0", "0.4.0"),
    ],
)
def test_next_version(current, part, expected):
    assert release.next_version(current, part) == expected


def test_next_version_refuses_going_back():
    with pytest.raises(release.ReleaseError, match="must be above"):
        release.next_version("0.2.0", "0.1.9")


# ---------------------------------------------------------------------------
# the changelog check and the release record, in a throwaway git repository
# ---------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with speedrun-demo 0.1.0 released (tagged), the script pointed at it."""
    _git(tmp_path, "init", "-q")
    _demo(tmp_path)
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "demo 0.1.0")
    _git(tmp_path, "tag", "speedrun-demo-v0.1.0")
    monkeypatch.setattr(release, "REPO", tmp_path)
    monkeypatch.setattr(release, "RELEASES_FILE", tmp_path / "releases.toml")
    return tmp_path


def _check(repo: Path) -> list[str]:
    return release.check_changelogs(release.discover(repo / "packages"))


def _empty_unreleased(repo: Path) -> None:
    path = repo / "packages/speedrun-demo/CHANGELOG.md"
    path.write_text(path.read_text().replace("- Something new.\n\n", ""))


def test_an_unchanged_distribution_passes(repo):
    assert _check(repo) == ["speedrun-demo: unchanged since 0.1.0"]


def test_a_source_change_without_a_changelog_entry_fails_and_names_the_fix(repo):
    _empty_unreleased(repo)
    module = repo / "packages/speedrun-demo/src/speedrun/mixins/demo/_new.py"
    module.write_text("X = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "change")
    with pytest.raises(
        release.ReleaseError,
        match=r"speedrun-demo changed since its release 0\.1\.0.*_new\.py.*Unreleased",
    ):
        _check(repo)
    # the entry makes it pass
    changelog = repo / "packages/speedrun-demo/CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## Unreleased\n", "## Unreleased\n\n- `X`.\n")
    )
    assert "with changelog entries" in _check(repo)[0]


def test_without_the_tag_the_recorded_commit_is_the_base(repo):
    _empty_unreleased(repo)
    released = _git(repo, "rev-parse", "HEAD")
    _git(repo, "tag", "-d", "speedrun-demo-v0.1.0")
    assert _check(repo) == ["speedrun-demo: never released, nothing to compare with"]
    (dist,) = release.discover(repo / "packages")
    assert release.record(dist, released) == released
    assert release.read_releases() == {"speedrun-demo": {"0.1.0": released}}
    (repo / "packages/speedrun-demo/README.md").write_text("changed\n")
    with pytest.raises(release.ReleaseError, match="speedrun-demo changed since its release 0.1.0"):
        _check(repo)
    # a record that points at a commit this clone lacks is an error with the fix, not a pass
    release.write_releases({"speedrun-demo": {"0.1.0": "0" * 40}})
    with pytest.raises(release.ReleaseError, match="which this clone does not have"):
        _check(repo)


def test_a_bumped_but_unrecorded_release_counts_its_new_section(repo):
    (dist,) = release.discover(repo / "packages")
    release.release_changelog(dist, "0.2.0", "2026-12-04")
    dist.set_version("0.2.0")
    assert _check(repo) == ["speedrun-demo: 0.2.0 (after 0.1.0) has its changelog section"]


def test_record_refuses_to_move_a_release_without_force(repo):
    (dist,) = release.discover(repo / "packages")
    first = _git(repo, "rev-parse", "HEAD")
    release.record(dist)
    (repo / "x").write_text("x")
    _git(repo, "add", "x")
    _git(repo, "commit", "-q", "-m", "x")
    with pytest.raises(release.ReleaseError, match="already recorded"):
        release.record(dist)
    assert release.record(dist, force=True) != first


def test_select_copies_the_tagged_distribution_only(tmp_path):
    wheelhouse = tmp_path / "wh"
    wheelhouse.mkdir()
    core = release.find(release.CORE, DISTRIBUTIONS)
    names = [
        f"speedrun_core-{core.version}.tar.gz",
        f"speedrun_core-{core.version}-py3-none-any.whl",
        "speedrun_io-9.9.9-py3-none-any.whl",
        "numpy-2.0-cp311-cp311-linux_x86_64.whl",
    ]
    for name in names:
        (wheelhouse / name).write_bytes(b"")
    selected = release.select(core.tag(core.version), wheelhouse, tmp_path / "up", DISTRIBUTIONS)
    assert sorted(p.name for p in selected) == sorted(names[:2])
    with pytest.raises(release.ReleaseError, match="source says"):
        release.select(core.tag("9.9.9"), wheelhouse, tmp_path / "up", DISTRIBUTIONS)
    with pytest.raises(release.ReleaseError, match="no release tag"):
        release.select("v1.0", wheelhouse, tmp_path / "up", DISTRIBUTIONS)
    shutil.rmtree(tmp_path / "up")


def _wheel(path: Path, body: bytes) -> Path:
    import hashlib
    import zipfile

    digest = hashlib.sha256(body).hexdigest()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("speedrun/__init__.py", body)
        zf.writestr(
            "speedrun_core-0.2.0.dist-info/RECORD",
            f"speedrun/__init__.py,sha256={digest},{len(body)}\n"
            "speedrun_core-0.2.0.dist-info/RECORD,,\n",
        )
    return path


def test_wheel_files_tell_identical_wheels_from_different_ones(tmp_path):
    first = release.wheel_files(_wheel(tmp_path / "a.whl", b"x = 1\n"))
    assert first == release.wheel_files(_wheel(tmp_path / "b.whl", b"x = 1\n"))
    assert first != release.wheel_files(_wheel(tmp_path / "c.whl", b"x = 2\n"))
    assert {path for path, _ in first} == {"speedrun/__init__.py"}
