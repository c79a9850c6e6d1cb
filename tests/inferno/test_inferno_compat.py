"""The inferno 0.1.7 compatibility fixes: each is needed on this stack, works, and is skipped
when the installed code does not need it."""

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("inferno", reason="pip install --no-deps inferno-pytorch==0.1.7")
torch = pytest.importorskip("torch")

from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from speedrun.mixins.inferno import (
    _compat,
    _trainer,
    applied_fixes,
)


def _silent(trainer):
    trainer.print = lambda *args, **kwargs: None
    return trainer


def _regression_loader(n=8, batch_size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, generator=generator)
    return DataLoader(TensorDataset(inputs, inputs.sum(dim=1, keepdim=True)), batch_size=batch_size)


# -- scipy.misc.toimage / imsave ------------------------------------------------------------------
def test_toimage_scales_a_float_array_to_bytes():
    image = _compat.toimage(np.array([[0.0, 0.5], [1.0, 2.0]]))
    assert image.mode == "L"
    assert np.asarray(image).tolist() == [[0, 64], [128, 255]]


def test_toimage_respects_cmin_cmax_and_leaves_uint8_alone():
    clipped = np.asarray(_compat.toimage(np.array([[-1.0, 0.0], [1.0, 3.0]]), cmin=0, cmax=1))
    assert clipped.tolist() == [[0, 0], [255, 255]]
    raw = np.array([[3, 200]], dtype=np.uint8)
    assert np.asarray(_compat.toimage(raw)).tolist() == [[3, 200]]
    flat = np.asarray(_compat.toimage(np.full((2, 2), 7.0)))
    assert flat.tolist() == [[0, 0], [0, 0]]


def test_toimage_makes_rgb_from_either_channel_layout():
    hwc = np.zeros((4, 5, 3))
    hwc[..., 0] = 1.0
    assert _compat.toimage(hwc).mode == "RGB"
    assert np.asarray(_compat.toimage(hwc))[0, 0].tolist() == [255, 0, 0]
    chw = np.moveaxis(hwc, -1, 0)
    assert np.asarray(_compat.toimage(chw)).shape == (4, 5, 3)
    assert _compat.toimage(np.ones((2, 2, 4))).mode == "RGBA"


def test_toimage_refuses_what_it_cannot_represent():
    with pytest.raises(ValueError, match="2-D or 3-D"):
        _compat.toimage(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="length 3 or 4"):
        _compat.toimage(np.zeros((5, 6, 7)))
    with pytest.raises(ValueError, match="palettes"):
        _compat.toimage(np.zeros((2, 2)), pal=[0] * 768)


def test_imsave_writes_a_png_that_pil_reads_back(tmp_path):
    path = tmp_path / "image.png"
    _compat.imsave(str(path), np.array([[0.0, 1.0]]))
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert np.asarray(image).tolist() == [[0, 255]]


def test_scipy_misc_gets_toimage_only_when_it_lacks_it():
    import scipy.misc

    assert _compat.ensure_scipy_misc_toimage() in {"present", "added"}
    assert callable(scipy.misc.toimage)
    # Once added (or if SciPy had it), a second call changes nothing.
    assert _compat.ensure_scipy_misc_toimage() == "present"


def test_a_scipy_without_scipy_misc_gets_a_stand_in_module():
    script = textwrap.dedent("""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "scipy.misc":
                    raise ModuleNotFoundError("No module named 'scipy.misc'", name=name)
        sys.meta_path.insert(0, Block())
        from speedrun.mixins.inferno import _compat
        print(_compat.ensure_scipy_misc_toimage())
        from scipy.misc import toimage
        import inferno.trainers.basic
        print(toimage is _compat.toimage, "torch" in sys.modules)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["created", "True", "True"]


def test_fixes_needed_on_this_stack_are_reported():
    import scipy.misc

    fixes = applied_fixes()
    assert ("scipy-misc-toimage" in fixes) == (scipy.misc.toimage is _compat.toimage)
    # torch >= 0.4 returns 0-dim losses, which inferno 0.1.7's validation cannot index.
    assert "validation-0dim-loss" in fixes
    assert "0-dim" in fixes["validation-0dim-loss"]
    assert all(isinstance(reason, str) and reason for reason in fixes.values())


# -- validation -----------------------------------------------------------------------------------
def test_inferno_validation_fails_here_and_the_fix_validates():
    model = torch.nn.Linear(3, 1)
    loader = _regression_loader()
    broken = _silent(_trainer.InfernoTrainer(model).build_criterion("MSELoss"))
    broken.bind_loader("validate", loader)
    with pytest.warns(UserWarning), pytest.raises(IndexError):
        broken.validate_for()

    fixed = _silent(_trainer.SpeedrunTrainer(model).build_criterion("MSELoss"))
    fixed.bind_loader("validate", loader)
    fixed.validate_for()
    with torch.no_grad():
        expected = np.mean([torch.nn.functional.mse_loss(model(x), y).item() for x, y in loader])
    assert fixed.get_state("validation_loss_averaged") == pytest.approx(expected, rel=1e-6)
    assert fixed._best_validation_score == pytest.approx(expected, rel=1e-6)
    assert fixed.get_state("validation_prediction").requires_grad is False


def test_the_validation_probe_accepts_a_working_validate_for(monkeypatch):
    assert _trainer._validation_is_broken() is not None
    monkeypatch.setattr(_trainer, "InfernoTrainer", _trainer.SpeedrunTrainer)
    assert _trainer._validation_is_broken() is None


def test_fixes_a_working_inferno_does_not_need_are_left_out(monkeypatch):
    chosen = _trainer._choose_fixes()
    assert _trainer.ValidationFix in chosen
    monkeypatch.setattr(_trainer, "InfernoTrainer", _trainer.SpeedrunTrainer)
    fixed_stack = _trainer._choose_fixes()
    assert _trainer.ValidationFix not in fixed_stack
    assert _trainer.SaveAfterBestValidationFix not in fixed_stack


# -- save schedule --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["InfernoTrainer", "SpeedrunTrainer"])
def test_save_every_survives_an_improved_validation_score(cls):
    trainer = getattr(_trainer, cls)()
    trainer.save_every((2, "iterations"))
    trainer._iteration_count = 2
    trainer._is_iteration_with_best_validation_score = True
    if cls == "InfernoTrainer":
        assert trainer.save_now is False  # the bug: the schedule is skipped
    else:
        assert trainer.save_now is True
        trainer._iteration_count = 3
        assert trainer.save_now is False
        trainer.save_at_best_validation_score(True)
        assert trainer.save_now is True
        trainer.save_at_best_validation_score(False)
        trainer.save_now = True  # externally triggered, consumed once
        assert trainer.save_now is True
        assert trainer.save_now is False


# -- scalar states --------------------------------------------------------------------------------
def test_nan_detector_reads_the_loss_state():
    from inferno.trainers.callbacks.essentials import NaNDetector

    trainer = _silent(_trainer.SpeedrunTrainer(torch.nn.Linear(1, 1)))
    detector = NaNDetector()
    trainer.register_callback(detector)
    trainer.update_state("training_loss", torch.tensor(0.5))
    assert trainer.get_state("training_loss").shape == (1,)
    detector.end_of_training_iteration()
    trainer.update_state("training_loss", torch.tensor(float("nan")))
    with pytest.raises(RuntimeError, match="NaN"):
        detector.end_of_training_iteration()


# -- checkpoints ----------------------------------------------------------------------------------
def test_checkpoint_with_adam_saves_atomically_and_loads_back(tmp_path):
    model = torch.nn.Linear(3, 1)
    trainer = _silent(
        _trainer.SpeedrunTrainer(model).build_criterion("MSELoss").build_optimizer("Adam", lr=0.01)
    )
    trainer.bind_loader("train", _regression_loader()).set_max_num_iterations(3)
    trainer.save_to_directory(str(tmp_path))
    trainer.fit()
    trainer.save()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pytorch"]

    restored = _silent(_trainer.SpeedrunTrainer(torch.nn.Linear(3, 1)))
    restored.load(from_directory=str(tmp_path))
    assert restored.iteration_count == 3
    assert isinstance(restored.optimizer, torch.optim.Adam)
    assert restored.optimizer.state_dict()["state"], "Adam's moments were not restored"
    for saved, loaded in zip(model.parameters(), restored.model.parameters()):
        assert torch.equal(saved, loaded)


def test_dill_pickles_optimizers_by_reference_only_when_it_must():
    import dill

    module = _trainer.checkpoint_pickle_module()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    needed = _trainer._dill_fails_on_optimizers() is not None
    assert (module is not dill) == needed
    assert ("dill-optimizer-byref" in applied_fixes()) == needed
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer}, buffer, pickle_module=module)
    buffer.seek(0)
    loaded = torch.load(buffer, pickle_module=dill, weights_only=False)["optimizer"]
    assert type(loaded) is torch.optim.SGD


def test_save_without_a_folder_says_what_to_do():
    from speedrun import CheckpointError

    trainer = _silent(_trainer.SpeedrunTrainer(torch.nn.Linear(1, 1)))
    with pytest.raises(CheckpointError, match="save_to_directory"):
        trainer.save()
