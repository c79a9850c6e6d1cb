#!/usr/bin/env python3
"""Release tooling for the speedrun monorepo: every step of a release, in one script.

The release workflow (``.github/workflows/release.yml``) and ``.ci/run`` (through
``hatch run release:check``) call the same commands; CI stops before the upload.

Versions and changelogs::

    python scripts/release.py list                      # distributions, versions, releases
    python scripts/release.py bump core minor           # version + CHANGELOG "Unreleased" -> release
    python scripts/release.py bump core minor --tag     # ... and commit, tag speedrun-core-v0.3.0, record
    python scripts/release.py record core               # record HEAD as the current version's release
    python scripts/release.py check-changelogs          # changed since the last release => entry needed

Build and check (what CI runs; ``check`` runs them all, in this order, timed)::

    python scripts/release.py build                     # hatch build of every distribution -> wheelhouse
    python scripts/release.py check-dists               # twine check --strict, check-wheel-contents, sdists
    python scripts/release.py install-checks            # fresh venvs from the wheelhouse only
    python scripts/release.py lowest-core               # every mixin's tests against lowest and current core
    python scripts/release.py downstream                # examples/downstream installs, runs, reads its events
    python scripts/release.py docs                      # mkdocs build --strict
    python scripts/release.py check                     # all of the above

Publishing (the workflow's last step uploads what this selects)::

    python scripts/release.py select speedrun-core-v0.2.0 --dest dist/upload

Distributions are discovered from ``packages/*/pyproject.toml``. A distribution's version has one
source: a static ``version`` in its pyproject.toml, or (as in this repository) ``__version__`` in the
file named by ``[tool.hatch.version] path``. Each release's commit is recorded in ``releases.toml``,
so the changelog check and the lowest-core matrix work on a clone without tags.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: tomli comes with hatch
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGES = REPO / "packages"
RELEASES_FILE = REPO / "releases.toml"
DEFAULT_WHEELHOUSE = REPO / "dist" / "wheelhouse"
CORE = "speedrun-core"
TORCH_PIN = "torch==2.13.0"  # never an unpinned torch: it would pull a multi-GB CUDA build
INFERNO_PIN = "inferno-pytorch==0.1.7"  # installed with --no-deps (its metadata pins pip==8.1.2)
# Installed with every mixin whose tests run in a fresh venv (what hatch-test adds for them).
TEST_REQUIREMENTS = [
    "pytest~=9.0",
    "pytest-mock~=3.12",
    "tensorboard",
    "pillow",
    "numpy",
    TORCH_PIN,
]
# Heavy third-party packages that speedrun-core alone must not pull in.
NOT_WITH_CORE = ("torch", "numpy", "tensorboardx", "matplotlib")
UNRELEASED = "Unreleased"
VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
VERSION_ASSIGNMENT = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


class ReleaseError(Exception):
    """A check failed or a command cannot proceed; the message says why and what to do."""


# ---------------------------------------------------------------------------
# distributions
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """One distribution under ``packages/``."""

    name: str  # "speedrun-tensorboard"
    folder: Path
    pyproject: dict = field(repr=False, compare=False, hash=False)

    @property
    def short(self) -> str:
        """The name without ``speedrun-``: what ``bump`` and the tags use."""
        return self.name.removeprefix("speedrun-")

    @property
    def project(self) -> dict:
        return self.pyproject["project"]

    @property
    def is_core(self) -> bool:
        return self.name == CORE

    @property
    def module(self) -> str:
        """The import name whose ``__version__`` this distribution provides."""
        if self.is_core:
            return "speedrun"
        for value in self.project.get("entry-points", {}).get("speedrun.mixins", {}).values():
            return value.split(":", 1)[0]
        return "speedrun.mixins." + self.short.replace("-", "_")

    @property
    def version_file(self) -> Path | None:
        """The file holding ``__version__`` when the version is dynamic, else None."""
        if "version" in self.project:
            return None
        path = self.pyproject.get("tool", {}).get("hatch", {}).get("version", {}).get("path")
        if "version" not in self.project.get("dynamic", []) or not path:
            raise ReleaseError(
                f"{self.folder / 'pyproject.toml'}: expected a static project.version, or "
                'dynamic = ["version"] with [tool.hatch.version] path = "src/.../__init__.py"'
            )
        return self.folder / path

    @property
    def version(self) -> str:
        if self.version_file is None:
            return str(self.project["version"])
        match = VERSION_ASSIGNMENT.search(self.version_file.read_text(encoding="utf-8"))
        if match is None:
            raise ReleaseError(
                f'{self.version_file}: expected a line __version__ = "X.Y.Z" (hatch\'s version source)'
            )
        return match.group(1)

    def set_version(self, version: str) -> None:
        """Write ``version`` to this distribution's one version source."""
        if self.version_file is None:
            path = self.folder / "pyproject.toml"
            text = path.read_text(encoding="utf-8")
            new, count = re.subn(
                r'^version\s*=\s*"[^"]*"',
                f'version = "{version}"',
                text,
                count=1,
                flags=re.MULTILINE,
            )
        else:
            path = self.version_file
            text = path.read_text(encoding="utf-8")
            new, count = VERSION_ASSIGNMENT.subn(f'__version__ = "{version}"', text, count=1)
        if count != 1:
            raise ReleaseError(f"{path}: found no version to replace")
        path.write_text(new, encoding="utf-8")

    @property
    def changelog(self) -> Path:
        return self.folder / "CHANGELOG.md"

    @property
    def tag_prefix(self) -> str:
        return f"{self.name}-v"

    def tag(self, version: str) -> str:
        return f"{self.tag_prefix}{version}"

    @property
    def dist_stem(self) -> str:
        """The file-name form of the name (``speedrun_core``), as in wheels and sdists."""
        return re.sub(r"[-_.]+", "_", self.name).lower()

    def requirements(self, *, extras: bool = False) -> list[str]:
        reqs = list(self.project.get("dependencies", []))
        if extras:
            for group in self.project.get("optional-dependencies", {}).values():
                reqs.extend(group)
        return reqs

    def core_requirement(self) -> str | None:
        """This distribution's requirement on speedrun-core (``speedrun-core>=0.2,<0.3``)."""
        for requirement in self.requirements():
            if re.match(r"speedrun[-_.]core\b", requirement, re.IGNORECASE):
                return requirement
        return None


def discover(packages: Path = PACKAGES) -> list[Distribution]:
    """Every distribution: each ``packages/*/pyproject.toml``, core first."""
    found = []
    for path in sorted(packages.glob("*/pyproject.toml")):
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        if "project" not in data or "name" not in data["project"]:
            raise ReleaseError(f"{path}: expected a [project] table with a name")
        found.append(Distribution(data["project"]["name"], path.parent, data))
    if not found:
        raise ReleaseError(
            f"no distribution found: expected packages/*/pyproject.toml under {packages}"
        )
    return sorted(found, key=lambda d: (not d.is_core, d.name))


def find(name: str, distributions: Sequence[Distribution] | None = None) -> Distribution:
    """The distribution called ``name``, ``speedrun-<name>`` or ``packages/<name>``."""
    distributions = discover() if distributions is None else distributions
    for dist in distributions:
        if name in (dist.name, dist.short, dist.folder.name, str(dist.folder)):
            return dist
    raise ReleaseError(
        f"unknown distribution {name!r}; expected one of: {', '.join(d.short for d in distributions)}"
    )


def parse_version(version: str) -> tuple[int, int, int]:
    match = VERSION_RE.match(version)
    if not match:
        raise ReleaseError(f"expected a version X.Y.Z, got {version!r}")
    return int(match[1]), int(match[2]), int(match[3])


def next_version(current: str, part: str) -> str:
    """``part`` is major, minor, patch or an explicit X.Y.Z above ``current``."""
    major, minor, patch = parse_version(current)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    if parse_version(part) <= (major, minor, patch):
        raise ReleaseError(f"the new version {part} must be above the current {current}")
    return part


# ---------------------------------------------------------------------------
# changelogs
# ---------------------------------------------------------------------------

_SECTION = re.compile(r"^## (.+?)\s*$", re.MULTILINE)


def changelog_sections(text: str) -> list[tuple[str, str]]:
    """``[(heading, body), ...]`` for every ``## heading`` of a CHANGELOG, in order."""
    matches = list(_SECTION.finditer(text))
    return [
        (
            m.group(1),
            text[m.end() : matches[i + 1].start() if i + 1 < len(matches) else len(text)].strip(),
        )
        for i, m in enumerate(matches)
    ]


def unreleased_entries(dist: Distribution) -> str:
    """The body of the CHANGELOG's "Unreleased" section (empty when nothing is in it)."""
    if not dist.changelog.is_file():
        raise ReleaseError(
            f"{dist.name} has no CHANGELOG.md; expected {dist.changelog} with a '## {UNRELEASED}' section"
        )
    for heading, body in changelog_sections(dist.changelog.read_text(encoding="utf-8")):
        if heading == UNRELEASED:
            return body
    raise ReleaseError(
        f"{dist.changelog} has no '## {UNRELEASED}' section; every CHANGELOG keeps one (empty after a "
        "release) above the release sections"
    )


def release_changelog(dist: Distribution, version: str, date: str) -> None:
    """Move the "Unreleased" entries under a new ``## version (date)`` heading."""
    entries = unreleased_entries(dist)
    if not entries:
        raise ReleaseError(
            f"nothing to release in {dist.name}: the '## {UNRELEASED}' section of {dist.changelog} is "
            "empty; write what changed there first"
        )
    text = dist.changelog.read_text(encoding="utf-8")
    start = re.search(rf"^## {UNRELEASED}\s*$", text, re.MULTILINE)
    assert start is not None
    rest = _SECTION.search(text, start.end())
    end = rest.start() if rest else len(text)
    new = f"{text[: start.start()]}## {UNRELEASED}\n\n## {version} ({date})\n\n{entries}\n\n{text[end:]}"
    dist.changelog.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# git and the release record
# ---------------------------------------------------------------------------


def git(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise ReleaseError(
            f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def commit_exists(rev: str) -> bool:
    return bool(git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False))


def read_releases(path: Path | None = None) -> dict[str, dict[str, str]]:
    """``{distribution: {version: commit}}`` from releases.toml (empty when absent)."""
    path = RELEASES_FILE if path is None else path
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {name: dict(versions) for name, versions in data.items()}


def write_releases(releases: dict[str, dict[str, str]], path: Path | None = None) -> None:
    path = RELEASES_FILE if path is None else path
    lines = [
        "# The commit each release of each distribution was built from, written by",
        "# `python scripts/release.py record NAME` (and `bump NAME PART --tag`). The changelog check",
        "# compares against it where the release tag is missing (a clone without tags), and the",
        "# lowest-core matrix builds old speedrun-core versions from it with `git archive`.",
    ]
    for name in sorted(releases):
        lines += ["", f"[{name}]"]
        for version in sorted(releases[name], key=parse_version):
            lines.append(f'"{version}" = "{releases[name][version]}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def released_versions(dist: Distribution) -> dict[str, str]:
    """``{version: commit}`` of every known release: tags, and the record for the rest."""
    found = dict(read_releases().get(dist.name, {}))
    for tag in git("tag", "--list", f"{dist.tag_prefix}*", check=False).splitlines():
        version = tag[len(dist.tag_prefix) :]
        if VERSION_RE.match(version):
            found[version] = git("rev-parse", f"{tag}^{{commit}}")
    return found


def record(dist: Distribution, commit: str = "HEAD", *, force: bool = False) -> str:
    """Record ``commit`` as the release of ``dist``'s current version in releases.toml."""
    sha = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    releases = read_releases()
    versions = releases.setdefault(dist.name, {})
    version = dist.version
    if versions.get(version, sha) != sha and not force:
        raise ReleaseError(
            f"{dist.name} {version} is already recorded as {versions[version]}; pass --force to replace it"
        )
    versions[version] = sha
    write_releases(releases)
    return sha


# ---------------------------------------------------------------------------
# running tools
# ---------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for tools and fresh venvs: nothing of the calling venv leaks in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "HATCH_ENV_ACTIVE")
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def run(
    command: Sequence[str | Path],
    *,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
    capture: bool = False,
    timeout: float = 1800,
) -> str:
    """Run ``command``; raise ReleaseError with its output when it fails."""
    printable = " ".join(str(part) if "\n" not in str(part) else "<script>" for part in command)
    print(f"  $ {printable}", flush=True)
    proc = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=clean_env() if env is None else env,
        stdin=subprocess.DEVNULL,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        output = f"\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}" if capture else ""
        raise ReleaseError(
            f"command failed with exit code {proc.returncode}: {printable} (in {cwd}){output}"
        )
    return proc.stdout if capture else ""


def tool(name: str) -> list[str]:
    """The command for a tool installed next to this interpreter (the release env), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found is None:
        raise ReleaseError(
            f"{name} is not installed; run this through `hatch run release:...` (hatch.toml's release env)"
        )
    return [found]


@dataclass
class Venv:
    """A fresh virtual environment, installed into from the wheelhouse only."""

    path: Path
    wheelhouse: Path
    # pip where a user's install is under test (core alone, examples/downstream); uv (shipped with
    # hatch) for the venvs with torch and the matrix: the same resolution from the same
    # wheelhouse, but installs in seconds instead of minutes, which keeps .ci/run under 30 minutes.
    installer: str = "pip"

    def __post_init__(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)
        if self.installer == "uv":
            run([*uv(), "venv", "--quiet", "--python", sys.executable, self.path])
        else:
            run([sys.executable, "-m", "venv", self.path])

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def install(self, *requirements: str | Path, no_deps: bool = False) -> None:
        local = ["--no-index", "--find-links", str(self.wheelhouse)]
        flags = ["--no-deps"] if no_deps else []
        if self.installer == "uv":
            # uv's cache outlives the run: a wheel of ours with an unchanged version (a release
            # being prepared) must come from this wheelhouse, not from an earlier run's cache.
            refresh = [
                argument
                for wheel in sorted(self.wheelhouse.glob("speedrun_*.whl"))
                for argument in ("--refresh-package", wheel.name.split("-")[0].replace("_", "-"))
            ]
            run(
                [
                    *uv(),
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    self.python,
                    *local,
                    *refresh,
                    *flags,
                    *requirements,
                ]
            )
        else:
            run([self.python, "-m", "pip", "install", "--quiet", *local, *flags, *requirements])

    def _pip(self) -> list[str | Path]:
        if self.installer == "uv":
            return [*uv(), "pip"]
        return [self.python, "-m", "pip"]

    def distributions(self) -> dict[str, str]:
        """``{normalised name: version}`` of everything installed (``pip list``)."""
        python = ["--python", self.python] if self.installer == "uv" else []
        out = run([*self._pip(), "list", "--format", "json", *python], capture=True)
        return {
            re.sub(r"[-_.]+", "-", item["name"]).lower(): item["version"]
            for item in json.loads(out)
        }

    def pip_check(self) -> None:
        """``pip check``: every installed distribution's requirements are met."""
        python = ["--python", self.python] if self.installer == "uv" else []
        run([*self._pip(), "check", *python])

    def python_run(self, code: str, *, cwd: Path) -> str:
        return run([self.python, "-I", "-c", textwrap.dedent(code)], cwd=cwd, capture=True)


def uv() -> list[str]:
    try:
        import uv as uv_module  # hatch depends on uv

        return [uv_module.find_uv_bin()]
    except ImportError:
        return tool("uv")


# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------


def check_changelogs(distributions: Sequence[Distribution]) -> list[str]:
    """Fail when a distribution changed since its last release without a changelog entry."""
    problems, report = [], []
    for dist in distributions:
        try:
            entries = unreleased_entries(dist)
        except ReleaseError as error:
            problems.append(str(error))
            continue
        releases = released_versions(dist)
        if not releases:
            report.append(f"{dist.name}: never released, nothing to compare with")
            continue
        latest = max(releases, key=parse_version)
        base = releases[latest]
        if not commit_exists(base):
            problems.append(
                f"{dist.name} {latest} was released from commit {base}, which this clone does not have "
                "(a shallow clone: fetch the whole history, e.g. actions/checkout with fetch-depth: 0; "
                f"or history was rewritten: record the release again with `python scripts/release.py record "
                f"{dist.short} --commit SHA --force`)"
            )
            continue
        relative = dist.folder.relative_to(REPO).as_posix()
        listed = [
            *git("diff", "--name-only", base, "--", relative).splitlines(),
            *git("ls-files", "--others", "--exclude-standard", "--", relative).splitlines(),
        ]
        changed = [path for path in listed if path != f"{relative}/CHANGELOG.md"]
        if not changed:
            report.append(f"{dist.name}: unchanged since {latest}")
            continue
        if dist.version != latest:
            # a release in progress: the entries are already under the new version's heading
            sections = dict(changelog_sections(dist.changelog.read_text(encoding="utf-8")))
            body = next((b for h, b in sections.items() if h.split(" ", 1)[0] == dist.version), "")
            if body or entries:
                report.append(
                    f"{dist.name}: {dist.version} (after {latest}) has its changelog section"
                )
                continue
        elif entries:
            report.append(
                f"{dist.name}: {len(changed)} file(s) changed since {latest}, with changelog entries"
            )
            continue
        problems.append(
            f"{dist.name} changed since its release {latest} (commit {base[:12]}) but its CHANGELOG has no entry "
            f"under '## {UNRELEASED}'. Changed: {', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''}. "
            f"Fix: describe the change under '## {UNRELEASED}' in {dist.changelog.relative_to(REPO)}"
        )
    for line in report:
        print(f"  {line}")
    if problems:
        raise ReleaseError("changelog check failed:\n  - " + "\n  - ".join(problems))
    return report


def build(distributions: Sequence[Distribution], wheelhouse: Path) -> list[Path]:
    """``hatch build`` (sdist and wheel) of every distribution into one wheelhouse."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    for old in [*wheelhouse.glob("speedrun_*.whl"), *wheelhouse.glob("speedrun_*.tar.gz")]:
        old.unlink()
    for dist in distributions:
        run([*tool("hatch"), "build", wheelhouse], cwd=dist.folder, env=clean_env())
    built = own_files(distributions, wheelhouse)
    for dist in distributions:
        names = [p.name for p in built if p.name.startswith(f"{dist.dist_stem}-{dist.version}")]
        if sorted(n.endswith(".whl") for n in names) != [False, True]:
            raise ReleaseError(
                f"expected one sdist and one wheel of {dist.name} {dist.version} in {wheelhouse}, got {names}"
            )
    return built


def own_files(distributions: Sequence[Distribution], wheelhouse: Path) -> list[Path]:
    """The sdists and wheels of our distributions in ``wheelhouse``."""
    stems = {d.dist_stem for d in distributions}
    return sorted(
        p
        for p in wheelhouse.iterdir()
        if p.name.endswith((".whl", ".tar.gz")) and p.name.split("-", 1)[0].lower() in stems
    )


def third_party_requirements(distributions: Sequence[Distribution]) -> list[str]:
    """What installs of our distributions (with every extra) and their tests need from PyPI."""
    ours = {d.name for d in distributions}
    reqs = set(TEST_REQUIREMENTS)
    for dist in distributions:
        for requirement in dist.requirements(extras=True):
            name = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
            if re.sub(r"[-_.]+", "-", name).lower() not in ours:
                reqs.add(requirement)
    # the build backend, so that examples/downstream (a project) installs with --no-index
    with (REPO / "examples" / "downstream" / "pyproject.toml").open("rb") as fh:
        reqs.update(tomllib.load(fh)["build-system"]["requires"])
    return sorted(reqs)


def fill_wheelhouse(distributions: Sequence[Distribution], wheelhouse: Path) -> None:
    """Add every third-party wheel the installs need (pip wheel: downloads, builds sdists)."""
    pip = [sys.executable, "-m", "pip"]
    run(
        [
            *pip,
            "wheel",
            "--quiet",
            "--quiet",
            "--wheel-dir",
            wheelhouse,
            *third_party_requirements(distributions),
        ]
    )
    # no dependencies: inferno-pytorch 0.1.7 pins pip==8.1.2 (speedrun-inferno's README)
    run([*pip, "wheel", "--quiet", "--quiet", "--no-deps", "--wheel-dir", wheelhouse, INFERNO_PIN])


def _sdist_members(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as tar:
        return [m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name]


def _wheel_metadata(wheel: Path) -> tuple[list[str], dict[str, list[str]]]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta_name).decode("utf-8")
    headers: dict[str, list[str]] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        if ": " in line and not line.startswith(" "):
            key, value = line.split(": ", 1)
            headers.setdefault(key, []).append(value)
    return names, headers


def check_dists(distributions: Sequence[Distribution], wheelhouse: Path) -> None:
    """twine check --strict, check-wheel-contents, and what packagers and PyPI expect."""
    files = own_files(distributions, wheelhouse)
    if not files:
        raise ReleaseError(f"no sdist or wheel of ours in {wheelhouse}; run the build step first")
    run([*tool("twine"), "check", "--strict", *files])
    wheels = [f for f in files if f.suffix == ".whl"]
    # check-wheel-contents reads wheels only; the sdists get the content checks below.
    run([*tool("check-wheel-contents"), *wheels])
    problems = []
    for dist in distributions:
        version = dist.version
        sdist = wheelhouse / f"{dist.dist_stem}-{version}.tar.gz"
        members = _sdist_members(sdist)
        expected = {"pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "PKG-INFO"}
        missing = sorted(expected - set(members))
        if missing:
            problems.append(f"{sdist.name} lacks {missing}")
        if not any(m.startswith("tests/") and m.endswith(".py") for m in members):
            problems.append(
                f"{sdist.name} has no tests/ (packagers run them): see [tool.hatch.build.targets.sdist.force-include]"
            )
        if not any(m.startswith("src/") for m in members):
            problems.append(f"{sdist.name} has no src/")
        stray = [m for m in members if "__pycache__" in m or m.endswith((".pyc", ".pyo"))]
        if stray:
            problems.append(f"{sdist.name} ships bytecode: {stray[:5]}")
        (wheel,) = [w for w in wheels if w.name.startswith(f"{dist.dist_stem}-{version}-")]
        names, headers = _wheel_metadata(wheel)
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            problems.append(f'{wheel.name} has no licence file (license-files = ["LICENSE"])')
        for key in (
            "Requires-Python",
            "Keywords",
            "Classifier",
            "Project-URL",
            "License-Expression",
            "Summary",
        ):
            if not headers.get(key):
                problems.append(f"{wheel.name}: the metadata has no {key}")
        classifiers = headers.get("Classifier", [])
        if not any(c.startswith("Programming Language :: Python :: 3.") for c in classifiers):
            problems.append(f"{wheel.name}: no 'Programming Language :: Python :: 3.X' classifier")
        if headers.get("Version") != [version]:
            problems.append(
                f"{wheel.name}: Version {headers.get('Version')} is not the source's {version}"
            )
    if problems:
        raise ReleaseError("distribution check failed:\n  - " + "\n  - ".join(problems))
    print(
        f"  {len(files)} files checked: twine --strict, check-wheel-contents, sdist contents, metadata"
    )


def _mixins(distributions: Sequence[Distribution]) -> list[Distribution]:
    return [d for d in distributions if not d.is_core]


_IMPORT_CHECK = """
    import importlib, importlib.metadata as md, json, sys
    found = {}
    for name, module in %r:
        imported = importlib.import_module(module)
        version = getattr(imported, "__version__", None)
        assert version == md.version(name), (name, module, version, md.version(name))
        found[name] = [version, imported.__file__]
    heavy = sorted(m for m in ("torch", "numpy", "matplotlib", "tensorboardX") if m in sys.modules)
    print(json.dumps({"found": found, "heavy": heavy}))
"""


def _import_check(venv: Venv, distributions: Sequence[Distribution], cwd: Path) -> dict:
    pairs = [(d.name, d.module) for d in distributions]
    report = json.loads(venv.python_run(_IMPORT_CHECK % (pairs,), cwd=cwd).strip().splitlines()[-1])
    for name, (_version, location) in report["found"].items():
        if not Path(location).resolve().is_relative_to(venv.path.resolve()):
            raise ReleaseError(
                f"{name} was imported from {location}, not from the fresh venv {venv.path}"
            )
    return report


def _needs_torch(dist: Distribution) -> bool:
    return any(re.match(r"torch\b", r) for r in dist.requirements())


def install_checks(distributions: Sequence[Distribution], wheelhouse: Path, work: Path) -> None:
    """Fresh venvs from the wheelhouse only: core alone, each mixin with core, all together."""
    core = find(CORE, distributions)
    pins = {d: f"{d.name}=={d.version}" for d in distributions}

    print("  core alone")
    venv = Venv(work / "core-alone", wheelhouse)
    venv.install(pins[core])
    installed = venv.distributions()
    heavy = sorted(set(installed) & set(NOT_WITH_CORE))
    if heavy:
        raise ReleaseError(
            f"installing speedrun-core alone also installed {heavy}; core depends on PyYAML only"
        )
    if sorted(n for n in installed if n.startswith("speedrun")) != [CORE]:
        raise ReleaseError(
            f"speedrun-core alone installed other speedrun distributions: {sorted(installed)}"
        )
    venv.pip_check()
    report = _import_check(venv, [core], work)
    if report["heavy"]:
        raise ReleaseError(f"import speedrun imported {report['heavy']}")
    run([venv.path / "bin" / "speedrun", "--version"])
    shutil.rmtree(venv.path)

    for dist in _mixins(distributions):
        print(f"  {dist.name} with speedrun-core")
        venv = Venv(work / f"with-{dist.short}", wheelhouse, installer="uv")
        extra = [TORCH_PIN] if _needs_torch(dist) else []
        venv.install(pins[core], pins[dist], *extra)
        speedrun_dists = sorted(n for n in venv.distributions() if n.startswith("speedrun"))
        if speedrun_dists != sorted([CORE, dist.name]):
            raise ReleaseError(f"{dist.name} with core installed {speedrun_dists}")
        venv.pip_check()  # inferno-pytorch is never installed here
        _import_check(venv, [core, dist], work)
        shutil.rmtree(venv.path)

    print("  all distributions together")
    venv = Venv(work / "all", wheelhouse, installer="uv")
    venv.install(*pins.values(), TORCH_PIN)
    venv.pip_check()
    _import_check(venv, distributions, work)
    listed = run([venv.path / "bin" / "speedrun", "mixins"], capture=True)
    for dist in _mixins(distributions):
        if dist.name not in listed:
            raise ReleaseError(f"`speedrun mixins` does not list {dist.name}:\n{listed}")
    shutil.rmtree(venv.path)


def lowest_version(dist: Distribution, core: Distribution, core_releases: dict[str, str]) -> str:
    """The lowest speedrun-core version (released, or the current one) that ``dist`` allows."""
    from packaging.requirements import Requirement

    requirement = dist.core_requirement()
    if requirement is None:
        raise ReleaseError(
            f"{dist.name} does not depend on speedrun-core; every mixin declares its range"
        )
    specifier = Requirement(requirement).specifier
    if not specifier.contains(core.version):
        raise ReleaseError(
            f"{dist.name} requires {requirement}, which excludes the current speedrun-core {core.version}: "
            "widen its range (and test it here) or keep core in the range"
        )
    candidates = [v for v in {*core_releases, core.version} if specifier.contains(v)]
    return min(candidates, key=parse_version)


def build_core_at(commit: str, expected_version: str, dest: Path, work: Path) -> Path:
    """speedrun-core's wheel built from ``git archive`` of ``commit`` (works on a clean clone)."""
    if not commit_exists(commit):
        raise ReleaseError(
            f"speedrun-core {expected_version} is recorded at commit {commit}, which this clone lacks; "
            "fetch the whole history (no shallow clone)"
        )
    source = work / f"core-{expected_version}-src"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    archive = work / f"core-{expected_version}.tar"
    run(["git", "archive", "--format=tar", f"--output={archive}", commit, "packages/speedrun-core"])
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data") if sys.version_info >= (3, 12) else tar.extractall(
            source
        )
    dest.mkdir(parents=True, exist_ok=True)
    run(
        [*tool("hatch"), "build", "-t", "wheel", dest],
        cwd=source / "packages" / "speedrun-core",
        env=clean_env(),
    )
    wheels = list(dest.glob(f"speedrun_core-{expected_version}-*.whl"))
    if len(wheels) != 1:
        raise ReleaseError(
            f"building speedrun-core at {commit} gave {[w.name for w in dest.iterdir()]}, expected version {expected_version}"
        )
    return wheels[0]


def wheel_files(wheel: Path) -> frozenset[tuple[str, str]]:
    """``(path, sha256)`` of every file a wheel installs (its RECORD, less RECORD itself)."""
    with zipfile.ZipFile(wheel) as zf:
        record = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        lines = zf.read(record).decode("utf-8").splitlines()
    return frozenset(
        (line.split(",")[0], line.split(",")[1])
        for line in lines
        if line and not line.startswith(record)
    )


def lowest_core(
    distributions: Sequence[Distribution], wheelhouse: Path, work: Path
) -> list[tuple[str, str, str]]:
    """Every mixin's tests in a fresh venv with the lowest speedrun-core it allows, then the current one.

    Mixins that share a core version share a venv (they are installed together, as users do).
    """
    core = find(CORE, distributions)
    core_releases = {v: c for v, c in released_versions(core).items()}
    groups: dict[str, list[Distribution]] = {}
    for dist in _mixins(distributions):
        groups.setdefault(lowest_version(dist, core, core_releases), []).append(dist)
    mixins = _mixins(distributions)
    plan = [(version, members, "lowest") for version, members in sorted(groups.items())]
    plan.append((core.version, mixins, "current"))
    current_wheel = wheelhouse / f"speedrun_core-{core.version}-py3-none-any.whl"
    results = []
    tested: list[tuple[frozenset[tuple[str, str]], frozenset[str]]] = []
    for version, members, kind in plan:
        label = f"{kind} speedrun-core {version}"
        if kind == "lowest" and version in core_releases:
            commit = core_releases[version]
            core_wheel = build_core_at(commit, version, work / f"core-{version}-wheel", work)
            label += f" (built from commit {commit[:12]})"
        else:
            core_wheel = current_wheel
            label += " (this checkout)"
        names = frozenset(d.name for d in members)
        files = wheel_files(core_wheel)
        if any(files == done_files and names <= done_names for done_files, done_names in tested):
            # The same files, byte for byte, with the same mixins: that run has been made above.
            print(
                f"  {label}: the same files as a speedrun-core wheel tested above with these mixins "
                "(identical RECORD hashes); not run twice"
            )
            results.append((kind, version, "same as above"))
            continue
        tested.append((files, names))
        print(f"  {label}: {', '.join(d.short for d in members)}")
        venv = Venv(work / f"matrix-{kind}-{version}", wheelhouse, installer="uv")
        venv.install(core_wheel, *(f"{d.name}=={d.version}" for d in members), *TEST_REQUIREMENTS)
        if any(d.short == "inferno" for d in members):
            venv.install(INFERNO_PIN, no_deps=True)
        found = _import_check(venv, [core, *members], work)["found"]
        if found[CORE][0] != version:
            raise ReleaseError(f"the venv has speedrun-core {found[CORE][0]}, expected {version}")
        folders = [f"tests/{d.short}" for d in members if (REPO / "tests" / d.short).is_dir()]
        # inferno's own fresh-install test builds wheels from this checkout and installs torch from
        # the index: it belongs to `hatch test`; here the installed wheels are under test.
        deselect = ["--deselect", "tests/inferno/test_inferno_install.py"]
        env = clean_env(PATH=f"{venv.path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        run(
            [venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *deselect, *folders],
            env=env,
        )
        results.append((kind, version, " ".join(d.short for d in members)))
        shutil.rmtree(venv.path)
    return results


def downstream(wheelhouse: Path, work: Path) -> None:
    """examples/downstream installs from the wheelhouse, runs, resumes, and reads its events back."""
    project = REPO / "examples" / "downstream"
    venv = Venv(work / "downstream", wheelhouse)
    venv.install(project)
    installed = venv.distributions()
    speedrun_dists = sorted(n for n in installed if n.startswith("speedrun"))
    if speedrun_dists != [CORE, "speedrun-downstream", "speedrun-tensorboard"]:
        raise ReleaseError(
            f"examples/downstream installed {speedrun_dists}; expected core and tensorboard only"
        )
    heavy = sorted(set(installed) & {"torch", "matplotlib", "pillow"})
    if heavy:
        raise ReleaseError(
            f"examples/downstream pulled in {heavy}; speedrun-tensorboard needs none of them"
        )
    venv.pip_check()
    print(
        f"  installed: speedrun-core {installed[CORE]}, speedrun-tensorboard {installed['speedrun-tensorboard']}"
    )
    run_dir = work / "downstream-runs" / "RUN-0"
    if run_dir.parent.exists():
        shutil.rmtree(run_dir.parent)
    command = venv.path / "bin" / "speedrun-downstream"
    first = run([command, run_dir], cwd=work, capture=True)
    if "IMAGE: log_image needs PIL, which is not installed. Fix: pip install pillow" not in first:
        raise ReleaseError(
            f"expected log_image to name the missing pillow; the run printed:\n{first}"
        )
    resumed = run(
        [command, run_dir, "--resume", "--config.training.num_steps", "30"], cwd=work, capture=True
    )
    result = json.loads(resumed.strip().splitlines()[-1])
    if result["step"] != 30 or abs(result["weight"] - 3) > 0.1 or abs(result["bias"] + 1) > 0.1:
        raise ReleaseError(f"the resumed run did not fit y = 3x - 1 in 30 steps: {result}")
    venv.install(f"{project}[check]")
    venv.pip_check()
    check = json.loads(
        run([venv.python, "-m", "speedrun_downstream.check", run_dir], cwd=work, capture=True)
    )
    if check["steps"] != list(range(0, 30, 2)):
        raise ReleaseError(
            f"expected train/loss at steps 0, 2, ..., 28 once each (resume purges), got {check['steps']}"
        )
    print(f"  RUN-0: 20 steps, resumed to 30; TensorBoard reads {check}")
    shutil.rmtree(venv.path)


def docs(site: Path) -> None:
    """mkdocs build --strict: no broken link, no missing reference."""
    run(
        [*tool("mkdocs"), "build", "--strict", "--site-dir", site],
        env=clean_env(NO_MKDOCS_2_WARNING="1"),
    )


def select(
    tag: str, wheelhouse: Path, dest: Path, distributions: Sequence[Distribution]
) -> list[Path]:
    """Copy the files one release tag publishes (its distribution's sdist and wheel) to ``dest``."""
    for dist in distributions:
        if tag.startswith(dist.tag_prefix) and VERSION_RE.match(tag[len(dist.tag_prefix) :]):
            version = tag[len(dist.tag_prefix) :]
            if version != dist.version:
                raise ReleaseError(
                    f"tag {tag} says {version}, but {dist.name}'s source says {dist.version}"
                )
            files = [
                p
                for p in own_files([dist], wheelhouse)
                if p.name.startswith(f"{dist.dist_stem}-{version}")
            ]
            if len(files) != 2:
                raise ReleaseError(
                    f"expected the sdist and wheel of {dist.name} {version} in {wheelhouse}, found {files}"
                )
            dest.mkdir(parents=True, exist_ok=True)
            for path in files:
                shutil.copy2(path, dest / path.name)
            return [dest / p.name for p in files]
    raise ReleaseError(
        f"{tag!r} is no release tag; expected speedrun-<name>-v<X.Y.Z> of: {', '.join(d.name for d in distributions)}"
    )


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def _timed(steps: Iterable[tuple[str, Callable[[], object]]]) -> None:
    timings = []
    try:
        for name, step in steps:
            print(f"\n== {name}", flush=True)
            start = time.monotonic()
            try:
                step()
            finally:
                timings.append((name, time.monotonic() - start))
    finally:
        print("\nrelease check step durations:")
        for name, seconds in timings:
            print(f"  {name:<18} {seconds:7.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/release.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--wheelhouse", type=Path, default=DEFAULT_WHEELHOUSE, help="default: dist/wheelhouse"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder for venvs and builds (default: a temporary one)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "list", help="the distributions, their versions and recorded releases"
    ).add_argument("--json", action="store_true")
    bump = sub.add_parser(
        "bump", help="bump one distribution's version and release its changelog section"
    )
    bump.add_argument("name")
    bump.add_argument("part", help="major, minor, patch or X.Y.Z")
    bump.add_argument("--date", default=_dt.date.today().isoformat())
    bump.add_argument(
        "--tag",
        action="store_true",
        help="also commit, tag speedrun-<name>-v<version> and record it",
    )
    rec = sub.add_parser(
        "record", help="record a commit (default HEAD) as the release of the current version"
    )
    rec.add_argument("names", nargs="+", help="distributions, or 'all'")
    rec.add_argument("--commit", default="HEAD")
    rec.add_argument("--force", action="store_true")
    sub.add_parser(
        "check-changelogs", help="changed since the last release => an entry under Unreleased"
    )
    sub.add_parser(
        "build", help="hatch build of every distribution into the wheelhouse, plus dependencies"
    )
    sub.add_parser(
        "check-dists", help="twine check --strict, check-wheel-contents, sdist and metadata"
    )
    sub.add_parser(
        "install-checks", help="fresh venvs from the wheelhouse: core alone, each mixin, all"
    )
    sub.add_parser(
        "lowest-core", help="each mixin's tests against the lowest and the current speedrun-core"
    )
    sub.add_parser("downstream", help="examples/downstream: install, run, read the events back")
    sub.add_parser("docs", help="mkdocs build --strict")
    sub.add_parser("check", help="every step above, timed (what CI runs; no upload)")
    sel = sub.add_parser(
        "select", help="copy one release tag's sdist and wheel to --dest (for the upload)"
    )
    sel.add_argument("tag")
    sel.add_argument("--dest", type=Path, default=REPO / "dist" / "upload")
    args = parser.parse_args(argv)

    distributions = discover()
    wheelhouse = args.wheelhouse.resolve()
    work_holder = None
    if args.work is None:
        work_holder = tempfile.TemporaryDirectory(prefix="speedrun-release-")
        work = Path(work_holder.name)
    else:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    try:
        if args.command == "list":
            rows = [
                {
                    "name": d.name,
                    "short": d.short,
                    "version": d.version,
                    "module": d.module,
                    "releases": released_versions(d),
                    "core_requirement": d.core_requirement(),
                }
                for d in distributions
            ]
            if args.json:
                print(json.dumps(rows, indent=2))
            for row in rows if not args.json else []:
                releases = ", ".join(sorted(row["releases"], key=parse_version)) or "none"
                print(
                    f"{row['name']:<24} {row['version']:<8} {row['module']:<32} releases: {releases}"
                )
        elif args.command == "bump":
            dist = find(args.name, distributions)
            version = next_version(dist.version, args.part)
            release_changelog(dist, version, args.date)
            dist.set_version(version)
            print(f"{dist.name}: {version}")
            if args.tag:
                files = [dist.changelog, dist.version_file or dist.folder / "pyproject.toml"]
                git("add", *map(str, files))
                git("commit", "-m", f"{dist.name} {version}", "--", *map(str, files))
                git("tag", "-a", dist.tag(version), "-m", f"{dist.name} {version}")
                record(dist)
                git("add", str(RELEASES_FILE))
                git(
                    "commit",
                    "-m",
                    f"releases.toml: {dist.name} {version}",
                    "--",
                    str(RELEASES_FILE),
                )
                print(
                    f"tagged {dist.tag(version)} and recorded it; push with: git push origin {dist.tag(version)}"
                )
        elif args.command == "record":
            chosen = (
                distributions
                if args.names == ["all"]
                else [find(n, distributions) for n in args.names]
            )
            for dist in chosen:
                print(f"{dist.name} {dist.version}: {record(dist, args.commit, force=args.force)}")
        elif args.command == "check-changelogs":
            check_changelogs(distributions)
        elif args.command == "build":
            build(distributions, wheelhouse)
            fill_wheelhouse(distributions, wheelhouse)
        elif args.command == "check-dists":
            check_dists(distributions, wheelhouse)
        elif args.command == "install-checks":
            install_checks(distributions, wheelhouse, work)
        elif args.command == "lowest-core":
            lowest_core(distributions, wheelhouse, work)
        elif args.command == "downstream":
            downstream(wheelhouse, work)
        elif args.command == "docs":
            docs(work / "site")
        elif args.command == "check":
            _timed(
                [
                    ("changelogs", lambda: check_changelogs(distributions)),
                    ("build", lambda: build(distributions, wheelhouse)),
                    ("wheelhouse deps", lambda: fill_wheelhouse(distributions, wheelhouse)),
                    ("twine+contents", lambda: check_dists(distributions, wheelhouse)),
                    ("fresh installs", lambda: install_checks(distributions, wheelhouse, work)),
                    ("lowest-core", lambda: lowest_core(distributions, wheelhouse, work)),
                    ("downstream", lambda: downstream(wheelhouse, work)),
                    ("docs", lambda: docs(work / "site")),
                ]
            )
            print("\nrelease check: every step passed")
        elif args.command == "select":
            for path in select(args.tag, wheelhouse, args.dest, distributions):
                print(path)
    except ReleaseError as error:
        print(f"scripts/release.py {args.command}: FAILED - {error}", file=sys.stderr)
        return 1
    finally:
        if work_holder is not None:
            work_holder.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
