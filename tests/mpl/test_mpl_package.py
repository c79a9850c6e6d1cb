"""speedrun-mpl as a distribution: entry point, legacy import, public API."""

from __future__ import annotations

from importlib.metadata import entry_points

from speedrun.mixins.mpl import MatplotlibMixin


def test_entry_point_and_legacy_import_give_the_same_class():
    (entry,) = [ep for ep in entry_points(group="speedrun.mixins") if ep.name == "mpl"]
    assert entry.load() is MatplotlibMixin
    from speedrun import MatplotlibMixin as legacy

    assert legacy is MatplotlibMixin


def test_public_api():
    import speedrun.mixins.mpl as package

    assert package.__all__ == ["MatplotlibMixin"]
    for name in ("figure2array", "save_figure", "new_figure"):
        assert callable(getattr(MatplotlibMixin, name)), name


def test_the_declared_floors_are_the_tested_ones():
    """README, metadata and the lowest-versions test environment name the same floors."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pyproject = (root / "packages" / "speedrun-mpl" / "pyproject.toml").read_text()
    readme = (root / "packages" / "speedrun-mpl" / "README.md").read_text()
    hatch = (root / "hatch.toml").read_text()
    floors = dict(re.findall(r'"(matplotlib|numpy)>=([\d.]+)"', pyproject))
    lowest = hatch[hatch.index("[envs.mpl-lowest]") :]
    pins = dict(re.findall(r'"(matplotlib|numpy)==([\d.]+)"', lowest))
    assert floors == {"matplotlib": "3.10", "numpy": "1.23"}
    for name, floor in floors.items():
        assert pins[name].startswith(floor + "."), (name, pins[name])
    assert "matplotlib 3.10+" in readme and "matplotlib 3.10+" in pyproject


def test_missing_matplotlib_names_the_install():
    """In a process where matplotlib cannot be imported, the error names it and the fix."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import importlib.abc, sys

        class Missing(importlib.abc.MetaPathFinder):  # as if matplotlib were not installed
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "matplotlib":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, Missing())
        from speedrun.mixins.mpl import MatplotlibMixin
        try:
            MatplotlibMixin().figure2array(None)
        except ImportError as error:
            print(error)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "speedrun-mpl needs matplotlib, which is not installed. "
        "Fix: pip install speedrun-mpl (or pip install matplotlib)"
    )
