"""inferno callbacks speedrun registers: TensorBoard logging through tensorboardX, step sync.

Importing this module imports torch and inferno (through :mod:`._trainer`'s fixes).
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from speedrun.ext import require

# isort: off
# The order matters: importing ._trainer applies the inferno compatibility fixes that the
# inferno imports below need (scipy.misc.toimage, ...).
from ._trainer import InfernoTrainer  # noqa: F401 - imported for its compatibility fixes

from inferno.trainers.callbacks.base import Callback
from inferno.trainers.callbacks.logging.base import Logger
from inferno.trainers.callbacks.logging.tensorboard import TensorboardLogger
from inferno.utils import torch_utils as _thu
# isort: on

__all__ = ["ExperimentStepCallback", "TensorboardXLogger"]


class TensorboardXLogger(TensorboardLogger):  # type: ignore[misc]  # inferno is untyped
    """inferno's ``TensorboardLogger``, writing through a tensorboardX ``SummaryWriter``.

    inferno 0.1.7's logger needs TensorFlow; this one keeps its configuration, its observed
    states and its schedule (``log_scalars_every``, ``log_images_every``) and writes events
    with tensorboardX instead. It is still an ``isinstance`` of inferno's logger, so code that
    checks for one (firelight's inferno callback) works with it.

    Scalars (``training_loss``, ``training_error``, ``learning_rate``, and after each
    validation run ``validation_loss_averaged``, ``validation_error_averaged``) are logged at
    the trainer's ``iteration_count``; 4-D and 5-D tensor states as images.

    Parameters
    ----------
    log_directory : str, optional
        Folder of the event files (the trainer's log directory if omitted).
    writer : tensorboardX.SummaryWriter or callable, optional
        A writer to share, or a function returning it on each use (e.g. one reading a
        ``TensorboardMixin``'s ``logger``, which may reopen its writer). A shared writer is
        never closed by this logger.
    log_scalars_every, log_images_every, send_image_at_batch_indices,
    send_image_at_channel_indices, send_volume_at_z_indices
        As for inferno's ``TensorboardLogger``.
    """

    def __init__(
        self,
        log_directory: str | None = None,
        log_scalars_every: Any = None,
        log_images_every: Any = None,
        send_image_at_batch_indices: Any = "all",
        send_image_at_channel_indices: Any = "all",
        send_volume_at_z_indices: Any = "mid",
        writer: Any = None,
    ) -> None:
        # inferno's __init__ asserts TensorFlow is importable: set up its attributes here.
        Logger.__init__(self, log_directory=log_directory)
        self._log_scalars_every = None
        self._log_images_every = None
        self._writer = None
        self._writer_source = None
        self._owns_writer = False
        if callable(writer):
            self._writer_source = writer
        else:
            self._writer = writer
        self._config = {
            "image_batch_indices": send_image_at_batch_indices,
            "image_channel_indices": send_image_at_channel_indices,
            "volume_z_indices": send_volume_at_z_indices,
        }
        self._trainer_states_being_observed_while_training = {
            "training_loss",
            "training_error",
            "training_prediction",
            "training_inputs",
            "training_target",
            "learning_rate",
        }
        self._trainer_states_being_observed_while_validating = {
            "validation_error_averaged",
            "validation_loss_averaged",
        }
        if log_scalars_every is not None:
            self.log_scalars_every = log_scalars_every
        if log_images_every is not None:
            self.log_images_every = log_images_every

    # -- the writer ---------------------------------------------------------------------------
    @property
    def writer(self) -> Any:
        """The tensorboardX ``SummaryWriter`` (created on first use if none was given)."""
        if self._writer_source is not None:
            return self._writer_source()
        if self._writer is None:
            tensorboardx = require(
                "tensorboardX",
                feature="InfernoMixin's TensorBoard logging (trainer/tensorboard)",
                install="pip install speedrun-inferno (or pip install tensorboardX)",
            )
            # tensorboardX names event files by the second: a unique, increasing suffix keeps
            # a writer opened in the same second (a resumed run) from truncating this one.
            self._writer = tensorboardx.SummaryWriter(
                logdir=self.log_directory, filename_suffix=f".{time.time_ns():020d}.{os.getpid()}"
            )
            self._owns_writer = True
        return self._writer

    def set_writer(self, writer: Any) -> TensorboardXLogger:
        """Write through ``writer`` (or the writer it returns, if callable) from now on.

        The writer is shared: this logger will not close it.
        """
        if self._owns_writer and self._writer is not None and self._writer is not writer:
            self._writer.close()
        self._writer, self._writer_source = (None, writer) if callable(writer) else (writer, None)
        self._owns_writer = False
        return self

    @property
    def has_writer(self) -> bool:
        """Whether a writer is attached (without creating one)."""
        return self._writer is not None or self._writer_source is not None

    def flush(self) -> None:
        """Flush pending events to disk."""
        if self._writer is not None:
            self._writer.flush()
        elif self._writer_source is not None:
            self._writer_source().flush()

    def close(self) -> None:
        """Close the writer if this logger created it; forget a shared one."""
        if self._writer is not None and self._owns_writer:
            self._writer.close()
        self._writer = None
        self._writer_source = None
        self._owns_writer = False

    # -- what gets logged ---------------------------------------------------------------------
    def log_object(
        self,
        tag: str,
        object_: Any,
        allow_scalar_logging: bool = True,
        allow_image_logging: bool = True,
    ) -> None:
        if isinstance(object_, (list, tuple)):
            for index, item in enumerate(object_):
                self.log_object(f"{tag}_{index}", item, allow_scalar_logging, allow_image_logging)
            return
        step = self.trainer.iteration_count
        if torch.is_tensor(object_) and object_.numel() == 1 and object_.dim() <= 1:
            if allow_scalar_logging:
                self.log_scalar(tag, float(object_.detach().reshape(())), step=step)
        elif isinstance(object_, (float, int)) and not isinstance(object_, bool):
            if allow_scalar_logging:
                self.log_scalar(tag, float(object_), step=step)
        elif _thu.is_label_image_or_volume_tensor(object_):
            if allow_image_logging:
                self.log_image_or_volume_batch(tag, object_[:, None, ...], step)
        elif _thu.is_image_or_volume_tensor(object_):
            if allow_image_logging:
                self.log_image_or_volume_batch(tag, object_, step)

    def log_image_or_volume_batch(self, tag: str, batch: Any, step: int | None = None) -> None:
        step = self.trainer.iteration_count if step is None else step
        self.log_images(tag, self.extract_images_from_batch(batch), step)

    def log_scalar(self, tag: str, value: float, step: int) -> None:
        """Write one scalar event."""
        self.writer.add_scalar(tag, float(value), global_step=int(step))

    def log_images(self, tag: str, images: list[Any], step: int) -> None:
        """Write 2-D arrays as grey images ``<tag>/<n>``, each scaled to its own range."""
        import numpy as np

        for number, image in enumerate(images):
            array = np.asarray(image, dtype=np.float32)
            low, high = float(np.nanmin(array)), float(np.nanmax(array))
            scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
            self.writer.add_image(
                f"{tag}/{number}", np.nan_to_num(scaled), global_step=int(step), dataformats="HW"
            )

    def log_histogram(self, tag: str, values: Any, step: int, bins: Any = "tensorflow") -> None:
        """Write a histogram of ``values``."""
        import numpy as np

        self.writer.add_histogram(tag, np.asarray(values), global_step=int(step), bins=bins)

    def end_of_validation_run(self, **kwargs: Any) -> None:
        super().end_of_validation_run(**kwargs)
        self.flush()

    def end_of_fit(self, **_: Any) -> None:
        self.flush()

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()  # inferno's drops the trainer and the writer
        config.update({"_writer": None, "_writer_source": None, "_owns_writer": False})
        return config


class ExperimentStepCallback(Callback):  # type: ignore[misc]  # inferno is untyped
    """Advance the experiment's ``step`` with each training iteration and ``epoch`` with
    each epoch of the trainer. The experiment is not pickled with the trainer."""

    def __init__(self, experiment: Any) -> None:
        super().__init__()
        self.experiment = experiment

    def end_of_training_iteration(self, **_: Any) -> None:
        if self.experiment is not None:
            self.experiment.next_step()

    def begin_of_epoch(self, **_: Any) -> None:
        if self.experiment is not None:
            self.experiment.next_epoch()

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["experiment"] = None
        return config
