from importlib.metadata import PackageNotFoundError, distribution

import pytest

import speedrun
from speedrun._mixins import LEGACY_MIXINS, resolve_mixin


def installed(dist):
    try:
        distribution(dist)
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("name, suffix", sorted(LEGACY_MIXINS.items()))
def test_legacy_names_resolve_or_name_the_pip_install(name, suffix):
    if installed(f"speedrun-{suffix}"):
        mixin = getattr(speedrun, name)
        assert isinstance(mixin, type) and mixin.__name__ == name
        assert mixin.__module__.startswith(f"speedrun.mixins.{suffix}")
    else:
        with pytest.raises(ImportError, match=f"pip install speedrun-{suffix}"):
            resolve_mixin(name)
        with pytest.raises(ImportError, match=f"pip install speedrun-{suffix}"):
            exec(f"from speedrun import {name}", {})


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="NoSuchMixin"):
        speedrun.NoSuchMixin
    with pytest.raises(AttributeError, match="nothing"):
        speedrun.nothing
    with pytest.raises(ImportError):
        exec("from speedrun import NoSuchMixin", {})
