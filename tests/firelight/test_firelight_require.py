"""A missing firelight is named with the pip install that brings it (no firelight needed here)."""

import logging
import sys

import pytest

from speedrun import BaseExperiment
from speedrun.mixins.firelight import FirelightMixin, import_firelight

MESSAGE = (
    "FirelightMixin needs firelight, which is not installed. Fix: pip install speedrun-firelight"
)


class Experiment(FirelightMixin, BaseExperiment):
    pass


def test_missing_firelight_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "firelight", None)  # `import firelight` fails as if missing
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ImportError) as caught:
        import_firelight()
    assert str(caught.value) == MESSAGE
    assert logging.getLogger().handlers == handlers

    experiment = Experiment(str(tmp_path / "experiment"))
    experiment.set("firelight", {"IdentityVisualizer": {"input": "inputs"}})
    with pytest.raises(ImportError) as caught:
        experiment.visualizer  # the property builds the visualizer
    assert str(caught.value) == MESSAGE
