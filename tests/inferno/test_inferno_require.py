"""A library InfernoMixin needs and cannot import is named, with the pip install that brings it.

Each test hides one library the way a missing one fails (``sys.modules[name] = None`` makes
``import name`` raise ImportError) and reads the whole message.
"""

import sys

import pytest

from speedrun.mixins.inferno import INFERNO_INSTALL_HINT, _compat


def test_missing_inferno_names_the_install_without_its_pins(monkeypatch):
    monkeypatch.setitem(sys.modules, "inferno", None)
    with pytest.raises(ImportError) as caught:
        _compat.import_inferno_trainers()
    assert str(caught.value) == (
        "InfernoMixin needs inferno, which is not installed. Fix: pip install --no-deps "
        "inferno-pytorch==0.1.7 (--no-deps: inferno-pytorch pins pip==8.1.2)"
    )
    assert INFERNO_INSTALL_HINT in str(caught.value)


def test_missing_scipy_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(ImportError) as caught:
        _compat.ensure_scipy_misc_toimage()
    assert str(caught.value) == (
        "inferno-pytorch 0.1.7 (InfernoMixin) needs scipy, which is not installed. "
        "Fix: pip install speedrun-inferno (or pip install scipy)"
    )


def test_a_library_inferno_imports_is_named(monkeypatch):
    pytest.importorskip("inferno", reason="pip install --no-deps inferno-pytorch==0.1.7")
    # inferno was installed with --no-deps; the first thing its trainer imports is dill.
    monkeypatch.delitem(sys.modules, "inferno.trainers.basic", raising=False)
    monkeypatch.setitem(sys.modules, "dill", None)
    with pytest.raises(ImportError) as caught:
        _compat.import_inferno_trainers()
    message = str(caught.value)
    assert message.startswith("InfernoMixin needs inferno.trainers.basic, which failed to import (")
    assert "dill" in message
    assert message.endswith(
        "Fix: pip install speedrun-inferno (it brings the libraries inferno imports)"
    )


def test_missing_tensorboardx_names_the_install(tmp_path, monkeypatch):
    pytest.importorskip("inferno", reason="pip install --no-deps inferno-pytorch==0.1.7")
    pytest.importorskip("torch")
    from speedrun.mixins.inferno._callbacks import TensorboardXLogger

    logger = TensorboardXLogger(log_directory=str(tmp_path))
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError) as caught:
        logger.writer  # the property creates the writer
    assert str(caught.value) == (
        "InfernoMixin's TensorBoard logging (trainer/tensorboard) needs tensorboardX, which is "
        "not installed. Fix: pip install speedrun-inferno (or pip install tensorboardX)"
    )


def test_missing_firelight_names_the_extra(tmp_path, monkeypatch):
    pytest.importorskip("inferno", reason="pip install --no-deps inferno-pytorch==0.1.7")
    torch = pytest.importorskip("torch")
    import logging

    from torch.utils.data import DataLoader, TensorDataset

    from speedrun import BaseExperiment
    from speedrun.mixins.inferno import InfernoMixin

    class Experiment(InfernoMixin, BaseExperiment):
        def build_model(self):
            return torch.nn.Linear(3, 1)

        def build_train_loader(self):
            return DataLoader(TensorDataset(torch.zeros(4, 3), torch.zeros(4, 1)), batch_size=2)

    experiment = Experiment(str(tmp_path / "experiment"))
    experiment.set("criterion", {"MSELoss": {}})
    experiment.set("trainer", {"optimizer": {"SGD": {"lr": 0.1}}, "tensorboard": {}})
    experiment.set("firelight", {"grid": {"IdentityVisualizer": {"input": "inputs"}}})
    monkeypatch.setitem(sys.modules, "firelight", None)
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ImportError) as caught:
        experiment.trainer  # the property builds the trainer
    assert str(caught.value) == (
        "InfernoMixin's 'firelight' config needs firelight, which is not installed. "
        "Fix: pip install 'speedrun-inferno[firelight]'"
    )
    assert logging.getLogger().handlers == handlers
    experiment.execute_hooks("clean_up")
