"""The ``speedrun`` namespace works for wheels, editable installs and any mix.

speedrun-core ships ``speedrun/__init__.py`` (which extends its ``__path__``
with every ``speedrun`` folder on ``sys.path``, as ``pkgutil.extend_path`` would); every mixin distribution ships only
``speedrun/mixins/<name>/`` and registers an entry point in the
``speedrun.mixins`` group. These tests build real wheels with
``hatch build -t wheel``, install them (or the source trees, editable) into
fresh virtual environments and import from there, exactly as a user would.

The test-only distribution ``tests/fixtures/speedrun-fixture`` stands in for a
mixin, so that the proof does not depend on any real mixin's code. The real
mixin distributions under ``packages/`` are checked against the same recipe at
the wheel level.

Dependencies are downloaded once per module into a wheelhouse; every install
afterwards runs with ``--no-index --find-links <wheelhouse>``.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: tomli comes with hatch (through hatchling)
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PACKAGES = REPO / "packages"
CORE_DIR = PACKAGES / "speedrun-core"
FIXTURE_DIR = REPO / "tests" / "fixtures" / "speedrun-fixture"
ENTRY_POINT_GROUP = "speedrun.mixins"
SUBPROCESS_TIMEOUT = 900  # seconds; generous, a stuck pip must not hang CI forever

# Every directory in packages/ other than core is a mixin distribution.
MIXIN_DIRS = sorted(
    path
    for path in PACKAGES.iterdir()
    if path.is_dir() and not path.name.startswith((".", "_")) and path != CORE_DIR
)


# ---------------------------------------------------------------------------
# subprocess helpers
# ---------------------------------------------------------------------------


def _subprocess_env() -> dict[str, str]:
    """Return the environment for child processes, without venv leakage.

    ``hatch test`` runs us inside an activated environment; its variables must
    not reach the fresh venvs or the nested ``hatch build``.
    """
    env = dict(os.environ)
    for name in (
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONSAFEPATH",
        "HATCH_ENV_ACTIVE",
        "PIP_REQUIRE_VIRTUALENV",
        "PIP_USER",
        "PIP_TARGET",
        "PIP_PREFIX",
        "PIP_NO_INDEX",
        "PIP_INDEX_URL",
        # pip and hatch start many short processes: let them cache bytecode
        # (a virtualenv-seeded pip has none, and compiling it costs ~3 s a run)
        "PYTHONDONTWRITEBYTECODE",
    ):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def _run(command: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command``; fail the test with its full output if it fails."""
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=_subprocess_env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"timed out after {SUBPROCESS_TIMEOUT}s: {' '.join(command)} (cwd={cwd})\n{exc}"
        )
    if proc.returncode != 0:
        pytest.fail(
            f"command failed with exit code {proc.returncode}: {' '.join(command)}\n"
            f"cwd: {cwd}\n--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}",
            pytrace=False,
        )
    return proc


def _hatch_command() -> list[str]:
    """Return the command that runs hatch (installed in the test environment)."""
    try:
        metadata.version("hatch")
    except metadata.PackageNotFoundError:
        executable = shutil.which("hatch")
        if executable is None:
            pytest.fail(
                "these tests build wheels with hatch, which is not installed in the test "
                f"environment ({sys.executable}); fix: pip install hatch",
                pytrace=False,
            )
        return [executable]
    return [sys.executable, "-m", "hatch"]


def _build_wheel(project: Path, dest: Path) -> Path:
    """Build ``project``'s wheel with ``hatch build -t wheel`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    _run([*_hatch_command(), "build", "-t", "wheel", str(dest)], cwd=project)
    wheels = sorted(dest.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel from {project} in {dest}, found {wheels}"
    return wheels[0]


def _read_pyproject(project: Path) -> dict[str, Any]:
    path = project / "pyproject.toml"
    if not path.is_file():
        pytest.fail(f"{project} is in packages/ but has no pyproject.toml", pytrace=False)
    with path.open("rb") as fh:
        return tomllib.load(fh)


def _pip_supports_python_option() -> bool:
    """Whether this interpreter's pip can install into another one (pip >= 22.3)."""
    try:
        version = metadata.version("pip")
    except metadata.PackageNotFoundError:
        return False
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return (major, minor) >= (22, 3)


@dataclass
class Installer:
    """Create fresh venvs and install into them from one local wheelhouse."""

    wheelhouse: Path
    use_outer_pip: bool

    def new_venv(self, path: Path) -> Path:
        """Create a venv at ``path`` and return its Python executable."""
        command = [sys.executable, "-m", "venv"]
        if self.use_outer_pip:
            # Seeding pip costs seconds per venv; our own pip drives the venv instead.
            command.append("--without-pip")
        _run([*command, str(path)], cwd=path.parent)
        bindir = "Scripts" if os.name == "nt" else "bin"
        python = path / bindir / ("python.exe" if os.name == "nt" else "python")
        assert python.exists(), f"venv at {path} has no interpreter at {python}"
        return python

    def pip(self, python: Path) -> list[str]:
        if self.use_outer_pip:
            return [sys.executable, "-m", "pip", "--python", str(python)]
        return [str(python), "-m", "pip"]

    def install(self, python: Path, *requirements: str) -> None:
        local = ["--no-index", "--find-links", str(self.wheelhouse)]
        _run([*self.pip(python), "install", "--quiet", *local, *requirements], cwd=python.parent)

    def uninstall(self, python: Path, *names: str) -> None:
        _run([*self.pip(python), "uninstall", "--yes", *names], cwd=python.parent)


def _run_snippet(python: Path, snippet: str, cwd: Path) -> dict[str, Any]:
    """Run ``snippet`` isolated (-I) in ``python``; return the JSON on its last line."""
    proc = _run([str(python), "-I", "-c", textwrap.dedent(snippet)], cwd=cwd)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"snippet printed nothing; stderr:\n{proc.stderr}"
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@dataclass
class Wheels:
    core: Path
    fixture: Path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    """Wheels of speedrun-core and speedrun-fixture, built once per module."""
    root = tmp_path_factory.mktemp("wheels")
    return Wheels(
        core=_build_wheel(CORE_DIR, root / "core"),
        fixture=_build_wheel(FIXTURE_DIR, root / "fixture"),
    )


@pytest.fixture(scope="module")
def installer(tmp_path_factory: pytest.TempPathFactory) -> Installer:
    """An installer whose wheelhouse holds core's dependencies and build backend."""
    wheelhouse = tmp_path_factory.mktemp("wheelhouse")
    use_outer_pip = _pip_supports_python_option()
    core = _read_pyproject(CORE_DIR)
    fixture = _read_pyproject(FIXTURE_DIR)
    requirements = sorted(
        set(core["project"].get("dependencies", []))
        | set(core["build-system"]["requires"])
        | set(fixture["build-system"]["requires"])
        # hatchling asks for editables when building an editable wheel
        | {"editables"}
    )
    if use_outer_pip:
        pip = [sys.executable, "-m", "pip"]
    else:
        # No usable pip here: download with the pip of a seeded helper venv.
        helper = Installer(wheelhouse, use_outer_pip=False).new_venv(
            wheelhouse.parent / "pip-helper"
        )
        pip = [str(helper), "-m", "pip"]
    _run(
        [
            *pip,
            "download",
            "--quiet",
            "--only-binary",
            ":all:",
            "--dest",
            str(wheelhouse),
            *requirements,
        ],
        cwd=wheelhouse,
    )
    return Installer(wheelhouse, use_outer_pip=use_outer_pip)


# ---------------------------------------------------------------------------
# wheel contents
# ---------------------------------------------------------------------------


def _wheel_files(wheel: Path) -> tuple[list[str], str]:
    """Return the wheel's payload files (outside dist-info) and its dist-info dir."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    dist_infos = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    assert len(dist_infos) == 1, (
        f"{wheel.name}: expected one .dist-info folder, found {sorted(dist_infos)}"
    )
    dist_info = dist_infos.pop()
    payload = [n for n in names if not n.startswith(f"{dist_info}/")]
    return payload, dist_info


def _wheel_text(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member).decode("utf-8")


def _entry_points(wheel: Path, dist_info: str) -> dict[str, dict[str, str]]:
    with zipfile.ZipFile(wheel) as zf:
        if f"{dist_info}/entry_points.txt" not in zf.namelist():
            return {}
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep names' case
    parser.read_string(_wheel_text(wheel, f"{dist_info}/entry_points.txt"))
    return {section: dict(parser[section]) for section in parser.sections()}


def _requires_dist(wheel: Path, dist_info: str) -> list[str]:
    text = _wheel_text(wheel, f"{dist_info}/METADATA")
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def _core_pin() -> tuple[str, str]:
    """Return the (lower, upper) bound mixins must use for core: ``>=0.X``, ``<0.(X+1)``."""
    version = metadata.version("speedrun-core")  # the installed one: tests never name a version
    major, minor = (int(part) for part in version.split(".")[:2])
    assert major == 0, f"the pin rule >=0.X,<0.(X+1) is defined for core 0.x, core is {version}"
    return f">={major}.{minor}", f"<{major}.{minor + 1}"


def _assert_mixin_wheel(wheel: Path, name: str) -> dict[str, str]:
    """Check a mixin wheel against the namespace recipe; return its entry points."""
    payload, dist_info = _wheel_files(wheel)
    prefix = f"speedrun/mixins/{name}/"
    stray = [n for n in payload if not n.startswith(prefix)]
    assert not stray, (
        f"{wheel.name} must ship only {prefix}* (plus dist-info); it also ships {stray}. "
        'Fix: [tool.hatch.build.targets.wheel] packages = ["src/speedrun"] and keep every '
        f"file under src/speedrun/mixins/{name}/ (never speedrun/__init__.py nor speedrun/mixins/__init__.py)"
    )
    assert f"{prefix}__init__.py" in payload, (
        f"{wheel.name} lacks {prefix}__init__.py; payload: {payload}"
    )
    assert f"{prefix}py.typed" in payload, f"{wheel.name} lacks {prefix}py.typed (PEP 561 marker)"
    assert not [n for n in payload if "__pycache__" in n or n.endswith(".pyc")], (
        f"{wheel.name} ships bytecode"
    )

    entry_points = _entry_points(wheel, dist_info).get(ENTRY_POINT_GROUP, {})
    assert entry_points, f"{wheel.name} registers no entry point in the {ENTRY_POINT_GROUP!r} group"
    for ep_name, value in entry_points.items():
        assert value.startswith(f"speedrun.mixins.{name}:"), (
            f"{wheel.name}: entry point {ep_name} = {value!r} must point into speedrun.mixins.{name}"
        )

    lower, upper = _core_pin()
    core_requirements = [
        r for r in _requires_dist(wheel, dist_info) if re.match(r"speedrun[-_.]core\b", r, re.I)
    ]
    assert len(core_requirements) == 1, (
        f"{wheel.name} must depend on speedrun-core once; found {core_requirements}"
    )
    specifiers = set(
        re.sub(r"\s", "", core_requirements[0].split(";")[0])[len("speedrun-core") :].split(",")
    )
    assert specifiers == {lower, upper}, (
        f"{wheel.name} requires {core_requirements[0]!r}; expected speedrun-core{lower},{upper}"
    )
    return entry_points


def test_core_wheel_owns_the_speedrun_package(wheels: Wheels) -> None:
    payload, dist_info = _wheel_files(wheels.core)
    assert dist_info.startswith("speedrun_core-")
    assert "speedrun/__init__.py" in payload
    assert "speedrun/py.typed" in payload
    assert "speedrun/mixins/__init__.py" not in payload, (
        "speedrun/mixins must stay a PEP 420 namespace: no distribution may ship speedrun/mixins/__init__.py"
    )
    stray = [n for n in payload if not n.startswith("speedrun/")]
    assert not stray, f"core wheel ships files outside speedrun/: {stray}"
    assert not [n for n in payload if "__pycache__" in n or n.endswith(".pyc")], (
        "core wheel ships bytecode"
    )
    assert _core_pin()  # core's version is 0.x, as the pin rule assumes


def test_fixture_wheel_follows_the_mixin_recipe(wheels: Wheels) -> None:
    payload, _ = _wheel_files(wheels.fixture)
    assert sorted(payload) == [
        "speedrun/mixins/fixture/__init__.py",
        "speedrun/mixins/fixture/py.typed",
    ]
    entry_points = _assert_mixin_wheel(wheels.fixture, "fixture")
    assert entry_points == {"fixture": "speedrun.mixins.fixture:FixtureMixin"}


@pytest.mark.parametrize("project", MIXIN_DIRS, ids=[p.name for p in MIXIN_DIRS])
def test_mixin_distribution_follows_the_recipe(project: Path, tmp_path: Path) -> None:
    """Every real mixin distribution in packages/ ships only its own folder."""
    assert project.name.startswith("speedrun-"), (
        f"distribution folders are named speedrun-<name>: {project}"
    )
    name = project.name[len("speedrun-") :].replace("-", "_")
    config = _read_pyproject(project)
    assert config["project"]["name"] == project.name, (
        f"{project}/pyproject.toml names the distribution {config['project']['name']!r}; expected {project.name!r}"
    )
    wheel_target = (
        config.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    )
    assert wheel_target.get("packages") == ["src/speedrun"], (
        f'{project}/pyproject.toml: expected [tool.hatch.build.targets.wheel] packages = ["src/speedrun"], '
        f"found {wheel_target!r}"
    )
    _assert_mixin_wheel(_build_wheel(project, tmp_path / "dist"), name)


# ---------------------------------------------------------------------------
# installs in fresh venvs: wheels, editable, and both mixes
# ---------------------------------------------------------------------------

_CHECK_INSTALLED = """
    import importlib.metadata as md, json
    import speedrun
    import speedrun.mixins.fixture as fixture_module

    found = [ep for ep in md.entry_points(group="speedrun.mixins") if ep.name == "fixture"]
    assert len(found) == 1, f"expected exactly one 'fixture' entry point, found {found!r}"
    (ep,) = found
    assert ep.value == "speedrun.mixins.fixture:FixtureMixin", ep.value
    assert ep.dist is not None and ep.dist.metadata["Name"] == "speedrun-fixture", ep.dist
    loaded = ep.load()
    assert loaded is fixture_module.FixtureMixin, (loaded, fixture_module)

    # legacy lazy name, resolved by speedrun.__getattr__ through the entry points
    from speedrun import FixtureMixin
    assert FixtureMixin is loaded, (FixtureMixin, loaded)

    class Experiment(FixtureMixin):
        pass

    experiment = Experiment()
    assert [experiment.fixture_ping(), experiment.fixture_ping()] == ["pong 1", "pong 2"]

    try:
        from speedrun import NoSuchMixin  # noqa: F401 - the import itself is the test
    except (ImportError, AttributeError):
        pass
    else:
        raise AssertionError("from speedrun import NoSuchMixin should fail")
    assert not hasattr(speedrun, "NoSuchMixin"), "unknown names must raise AttributeError (PEP 562)"

    print(json.dumps({"core": speedrun.__file__, "fixture": fixture_module.__file__}))
"""

_CHECK_AFTER_UNINSTALL = """
    import importlib.metadata as md, json, os
    import speedrun, speedrun._errors

    assert os.path.isfile(speedrun.__file__), speedrun.__file__
    try:
        import speedrun.mixins.fixture
    except ModuleNotFoundError:
        pass
    else:
        raise AssertionError(f"speedrun.mixins.fixture still importable from {speedrun.mixins.fixture.__file__}")
    assert not [ep for ep in md.entry_points(group="speedrun.mixins") if ep.name == "fixture"]
    try:
        from speedrun import FixtureMixin  # noqa: F401 - the import itself is the test
    except (ImportError, AttributeError):
        pass
    else:
        raise AssertionError("from speedrun import FixtureMixin should fail once speedrun-fixture is uninstalled")

    print(json.dumps({"core": speedrun.__file__}))
"""


@pytest.mark.parametrize(
    ("core_mode", "fixture_mode"),
    [("wheel", "wheel"), ("editable", "editable"), ("wheel", "editable"), ("editable", "wheel")],
    ids=[
        "core-wheel+fixture-wheel",
        "both-editable",
        "core-wheel+fixture-editable",
        "core-editable+fixture-wheel",
    ],
)
def test_namespace_across_install_modes(
    core_mode: str, fixture_mode: str, wheels: Wheels, installer: Installer, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    python = installer.new_venv(venv)

    def requirement(mode: str, project: Path, wheel: Path) -> list[str]:
        return ["--editable", str(project)] if mode == "editable" else [str(wheel)]

    installer.install(
        python,
        *requirement(core_mode, CORE_DIR, wheels.core),
        *requirement(fixture_mode, FIXTURE_DIR, wheels.fixture),
    )

    found = _run_snippet(python, _CHECK_INSTALLED, cwd=tmp_path)
    core_file = Path(found["core"]).resolve()
    fixture_file = Path(found["fixture"]).resolve()
    # Each distribution is imported from where its install mode puts it.
    if core_mode == "wheel":
        assert core_file.is_relative_to(venv.resolve()), core_file
    else:
        assert core_file == (CORE_DIR / "src" / "speedrun" / "__init__.py").resolve(), core_file
    if fixture_mode == "wheel":
        assert fixture_file.is_relative_to(venv.resolve()), fixture_file
    else:
        expected = FIXTURE_DIR / "src" / "speedrun" / "mixins" / "fixture" / "__init__.py"
        assert fixture_file == expected.resolve(), fixture_file

    # Uninstalling a mixin must never take core's speedrun/__init__.py with it.
    installer.uninstall(python, "speedrun-fixture")
    after = _run_snippet(python, _CHECK_AFTER_UNINSTALL, cwd=tmp_path)
    assert Path(after["core"]).resolve() == core_file
    assert core_file.is_file()
    if fixture_mode == "editable":
        assert fixture_file.is_file(), (
            "uninstalling an editable install must leave the source tree alone"
        )
