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
