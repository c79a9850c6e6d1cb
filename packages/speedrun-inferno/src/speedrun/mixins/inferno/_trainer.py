"""speedrun's inferno ``Trainer``: inferno's own, plus the fixes this stack needs.

Importing this module imports torch and inferno (the mixin imports it lazily, on first use of
``experiment.trainer``). :class:`SpeedrunTrainer` is inferno's ``Trainer`` with

- atomic, durable checkpoints (temp file, fsync, rename: an interrupted save never leaves a
  truncated ``checkpoint.pytorch``), and
- the compatibility fixes below, each chosen by a probe of the installed inferno, torch and
  dill, so a fixed inferno keeps its own code:

``validation-0dim-loss``
    inferno 0.1.7 validates with ``loss.data[0]`` and ``metric(...)[0]``, which fail on the
    0-dim tensors torch >= 0.4 returns. The replacement ``validate_for`` keeps inferno's
    callbacks, states and averaging, and runs the model under ``torch.no_grad()`` (what
    0.1.7's ``volatile=True`` meant).
``save-after-best-validation``
    inferno 0.1.7 never saves again once a validation score improved unless
    ``save_at_best_validation_score`` is on (the improvement replaced, instead of adding to,
    the ``save_every`` schedule). With the fix a best score *adds* a save.
``scalar-states-1d``
    0.1.7's callbacks (``NaNDetector``, ``AutoLRDecay``...) read scalar states as
    ``state[0]``; 0-dim tensors put into the trainer's state are stored with shape ``(1,)``.
``dill-optimizer-byref``
    dill cannot pickle torch optimizers by value on some torch/dill pairs (torch 2.13 with
    dill 0.4); checkpoints then pickle classes by reference (as plain pickle does) while
    keeping dill for everything else (lambdas in models).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import types
import warnings
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from speedrun import CheckpointError
from speedrun.ext import atomic_open

from ._compat import import_inferno_trainers, record_fix

_basic = import_inferno_trainers()
InfernoTrainer = _basic.Trainer

from inferno.utils import python_utils as _pyu  # noqa: E402 - needs the import-time fixes above
from inferno.utils import torch_utils as _thu  # noqa: E402 - needs the import-time fixes above
from inferno.utils import train_utils as _tu  # noqa: E402 - needs the import-time fixes above

__all__ = ["SpeedrunTrainer", "InfernoTrainer", "checkpoint_pickle_module"]


def _tensor_to_float(value: Any, what: str) -> Any:
    if torch.is_tensor(value):
        if value.numel() != 1:
            raise ValueError(
                f"expected the {what} to be a single number, got a tensor of shape "
                f"{tuple(value.shape)}; reduce it (e.g. reduction='mean')"
            )
        return value.detach().reshape(()).item()
    return value


# -- fix: validation -----------------------------------------------------------------------------
class ValidationFix:
    """``validate_for`` that works with 0-dim losses and metrics, without autograd."""

    def validate_for(self, num_iterations: int | None = None) -> Any:
        trainer: Any = self
        loss_meter = _tu.AverageMeter()
        error_meter = _tu.AverageMeter()
        if num_iterations is None:
            num_iterations = trainer._num_validation_iterations
        trainer.model.eval()
        trainer._last_validated_at_epoch = trainer._epoch_count
        callbacks = trainer.callbacks
        callbacks.call(
            callbacks.BEGIN_OF_VALIDATION_RUN,
            num_iterations=num_iterations,
            last_validated_at_epoch=trainer._last_validated_at_epoch,
        )
        if num_iterations is None:
            trainer.restart_generators("validate")
        iteration_num = 0
        # Same loop bounds as inferno's own validate_for (which runs num_iterations + 1).
        while num_iterations is None or iteration_num <= num_iterations:
            callbacks.call(callbacks.BEGIN_OF_VALIDATION_ITERATION, iteration_num=iteration_num)
            try:
                batch = trainer.fetch_next_batch(
                    "validate",
                    restart_exhausted_generators=num_iterations is not None,
                    update_batch_count=False,
                    update_epoch_count_if_generator_exhausted=False,
                )
            except StopIteration:
                break
            with _pyu.delayed_keyboard_interrupt(), torch.no_grad():
                batch = trainer.wrap_batch(batch)
                inputs, target = trainer.split_batch(batch, from_loader="validate")
                output, loss = trainer.apply_model_and_loss(inputs, target, backward=False)
            first_target = target[0] if isinstance(target, (list, tuple)) else target
            batch_size = int(first_target.size(0)) if first_target.dim() > 0 else 1
            loss_meter.update(_tensor_to_float(loss, "validation loss"), n=batch_size)
            if trainer.metric_is_defined:
                with torch.no_grad():
                    error = trainer.metric(
                        _thu.unwrap(output, to_cpu=False), _thu.unwrap(target, to_cpu=False)
                    )
                error = _tensor_to_float(error, "metric value")
                trainer.update_state("validation_error", error)
                error_meter.update(error, n=batch_size)
            trainer.update_state("validation_inputs", _thu.unwrap(inputs))
            trainer.update_state("validation_target", _thu.unwrap(target))
            trainer.update_state("validation_prediction", _thu.unwrap(output))
            trainer.update_state("validation_loss", _thu.unwrap(loss))
            trainer.update_state("validation_input", trainer.get_state("validation_inputs"))
            trainer.update_state_from_model_state_hooks()
            callbacks.call(callbacks.END_OF_VALIDATION_ITERATION, iteration_num=iteration_num)
            iteration_num += 1
        trainer.record_validation_results(
            validation_loss=loss_meter.avg,
            validation_error=error_meter.avg if trainer.metric_is_defined else None,
        )
        callbacks.call(
            callbacks.END_OF_VALIDATION_RUN,
            validation_loss_meter=loss_meter,
            validation_error_meter=error_meter if trainer.metric_is_defined else None,
        )
        return self


def _validation_is_broken() -> str | None:
    """Run the installed inferno's ``validate_for`` on a one-batch problem; why it fails."""
    trainer = InfernoTrainer(torch.nn.Linear(1, 1)).build_criterion("MSELoss")
    trainer.print = lambda *_args, **_kwargs: None  # silence the probe
    data = torch.zeros(2, 1)
    trainer.bind_loader("validate", DataLoader(TensorDataset(data, data), batch_size=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trainer.validate_for()
        except Exception as exc:
            return f"inferno's validate_for fails on a 0-dim loss: {type(exc).__name__}: {exc}"
    return None


# -- fix: saving after a best validation score ---------------------------------------------------
class SaveAfterBestValidationFix:
    """``save_now``: a best validation score adds a save, it does not cancel ``save_every``."""

    @property
    def save_now(self) -> bool:
        trainer: Any = self
        if trainer._save_externally_triggered:
            trainer._save_externally_triggered = False
            return True
        if (
            trainer._is_iteration_with_best_validation_score
            and trainer._save_at_best_validation_score
        ):
            return True
        every = trainer._save_every
        if every is None:
            return False
        if every.by_epoch:
            if trainer._epoch_count == trainer._last_saved_at_epoch:
                return False
            return bool(every.match(epoch_count=trainer._epoch_count))
        return bool(every.match(iteration_count=trainer._iteration_count))

    @save_now.setter
    def save_now(self, value: bool) -> None:
        trainer: Any = self
        trainer._save_externally_triggered = bool(value)


def _save_schedule_is_broken() -> str | None:
    trainer = InfernoTrainer()
    trainer.save_every((1, "iterations"))
    trainer._iteration_count = 1
    trainer._is_iteration_with_best_validation_score = True
    if not trainer.save_now:
        return "inferno's save_now skips the save_every schedule after an improved validation score"
    return None


# -- fix: scalar states --------------------------------------------------------------------------
class ScalarStatesFix:
    """Store 0-dim tensors in the trainer state with shape ``(1,)`` (what 0.1.7 expects)."""

    def update_state(self, key: str, value: Any) -> Any:
        if torch.is_tensor(value) and value.dim() == 0:
            value = value.reshape(1)
        return super().update_state(key, value)  # type: ignore[misc]  # inferno is untyped


def _scalar_states_are_0d() -> str | None:
    loss = torch.nn.MSELoss()(torch.zeros(2), torch.ones(2))
    if loss.dim() == 0 and not _thu.is_scalar_tensor(loss):
        return "torch returns 0-dim losses; inferno's callbacks read scalars as state[0]"
    return None


# -- serializer ----------------------------------------------------------------------------------
def _dill_pickle_module() -> Any:
    import dill

    class ByReferencePickler(dill.Pickler):  # type: ignore[misc]  # dill is untyped
        """dill, with classes pickled by reference (as plain pickle does)."""

        def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("byref", True)
            super().__init__(file, *args, **kwargs)

    module = types.ModuleType("speedrun_dill_byref", "dill with byref=True for torch.save")
    module.Pickler = ByReferencePickler  # type: ignore[attr-defined]  # dill stands in for pickle inside torch.save
    module.Unpickler = dill.Unpickler  # type: ignore[attr-defined]  # dill stands in for pickle inside torch.save
    module.load = dill.load  # type: ignore[attr-defined]  # dill stands in for pickle inside torch.save
    module.loads = dill.loads  # type: ignore[attr-defined]  # dill stands in for pickle inside torch.save
    module.dump = dill.dump  # type: ignore[attr-defined]  # dill stands in for pickle inside torch.save
    module.dumps = dill.dumps  # type: ignore[attr-defined]  # dill stands in for pickle inside torch.save
    return module


def _dill_fails_on_optimizers() -> str | None:
    import dill

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dill.dumps(optimizer)
    except Exception as exc:
        return f"dill cannot pickle a torch optimizer: {type(exc).__name__}: {exc}"
    return None


_PICKLE_MODULE: Any = None


def checkpoint_pickle_module() -> Any:
    """The pickle module inferno checkpoints are written with (dill, by reference if needed)."""
    global _PICKLE_MODULE
    if _PICKLE_MODULE is None:
        import dill

        reason = _dill_fails_on_optimizers()
        if reason is None:
            _PICKLE_MODULE = dill
        else:
            record_fix("dill-optimizer-byref", reason)
            _PICKLE_MODULE = _dill_pickle_module()
    return _PICKLE_MODULE


# -- the trainer ---------------------------------------------------------------------------------
class AtomicSave:
    """``save`` of inferno's trainer, written atomically and with a working serializer."""

    def save(self, exclude_loader: bool = True, stash_best_checkpoint: bool = True) -> Any:
        trainer: Any = self
        if trainer._save_to_directory is None:
            raise CheckpointError(
                "cannot save the inferno trainer: expected a checkpoint folder, got none. "
                "Call trainer.save_to_directory(path) (InfernoMixin does this with the "
                "experiment's Weights/ folder)"
            )
        trainer._last_saved_at_epoch = trainer._epoch_count
        is_best = trainer._is_iteration_with_best_validation_score
        counters = dict(
            epoch_count=trainer._epoch_count,
            batch_count=trainer._batch_count,
            iteration_count=trainer._iteration_count,
            is_iteration_with_best_validation_score=is_best,
        )
        callbacks = trainer.callbacks
        callbacks.call(
            callbacks.BEGIN_OF_SAVE, save_to_directory=trainer._save_to_directory, **counters
        )
        # Callbacks (e.g. PersistentSave) may rename the checkpoint in BEGIN_OF_SAVE.
        checkpoint_path = os.path.join(trainer._save_to_directory, trainer._checkpoint_filename)
        best_path = os.path.join(trainer._save_to_directory, trainer._best_checkpoint_filename)
        pickle_module = checkpoint_pickle_module()
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]annot locate reference.*")
            torch.save(
                trainer.get_config(exclude_loader=exclude_loader),
                buffer,
                pickle_module=pickle_module,
            )
        with atomic_open(checkpoint_path, "wb") as handle:
            handle.write(buffer.getbuffer())
        callbacks.call(
            callbacks.END_OF_SAVE,
            save_to_directory=trainer._save_to_directory,
            checkpoint_path=checkpoint_path,
            best_checkpoint_path=best_path,
            **counters,
        )
        if is_best and stash_best_checkpoint:
            with open(checkpoint_path, "rb") as source, atomic_open(best_path, "wb") as target:
                shutil.copyfileobj(source, target)
        trainer._is_iteration_with_best_validation_score = False
        trainer.print(f"Saved to {trainer._save_to_directory}.")
        return self


def _choose_fixes() -> tuple[type, ...]:
    chosen: list[type] = []
    for name, probe, fix in (
        ("validation-0dim-loss", _validation_is_broken, ValidationFix),
        ("save-after-best-validation", _save_schedule_is_broken, SaveAfterBestValidationFix),
        ("scalar-states-1d", _scalar_states_are_0d, ScalarStatesFix),
    ):
        with contextlib.redirect_stdout(io.StringIO()):
            reason = probe()
        if reason is not None:
            record_fix(name, reason)
            chosen.append(fix)
    return tuple(chosen)


SpeedrunTrainer: type = type(
    "SpeedrunTrainer",
    (*_choose_fixes(), AtomicSave, InfernoTrainer),
    {
        "__module__": __name__,
        "__qualname__": "SpeedrunTrainer",
        "__doc__": "inferno's ``Trainer`` with atomic checkpoints and the compatibility fixes "
        "the installed inferno needs (see ``applied_fixes()``).",
    },
)
