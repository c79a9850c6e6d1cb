"""``TensorboardMixin``: TensorBoard logging for speedrun experiments, through tensorboardX."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from speedrun import (
    ExperimentDirectoryError,
    is_main_process,
    register_hook,
)
from speedrun.ext import (
    CLEAN_UP,
    POST_LOAD,
    PRE_CHECKPOINT,
    PRE_DISPATCH,
    ConfigKey,
    TagScopeMixin,
    atomic_write_text,
    require,
    to_image_array,
)

from ._arrays import as_float, to_numpy

if TYPE_CHECKING:
    from tensorboardX import SummaryWriter

    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["TensorboardMixin"]

_SCALARS_EVERY = "tensorboard/log_scalars_every"
_IMAGES_EVERY = "tensorboard/log_images_every"
_EMBEDDINGS_EVERY = "tensorboard/log_embeddings_every"
_HISTOGRAMS_EVERY = "tensorboard/log_histograms_every"
_FLUSH_SECS = "tensorboard/flush_secs"
_BUFFER_BYTES = "tensorboard/buffer_bytes"
_MAX_QUEUE = "tensorboard/max_queue"  # tensorboardX's queue, gone: a warning says so
_HPARAMS = "tensorboard/hparams"
_HPARAMS_METRICS = "tensorboard/hparams_metrics"
_MAX_CACHED_TAGS = 50_000
# The characters TensorBoard (TensorFlow op names) allows in tags; others become "_".
_INVALID_TAG_CHARACTERS = re.compile(r"[^-/\w.]")

_MISSING: Any = object()  # a keyword argument that was not given

_INSTALL = "pip install speedrun-tensorboard (or pip install tensorboardX)"

# tensorboardX's protobuf classes, bound on first use by _load_tensorboardx().
_Summary: Any = None
_SummaryValue: Any = None


def _load_tensorboardx() -> type[SummaryWriter]:
    """Import tensorboardX (the first thing every path that writes or reads events does)."""
    global _Summary, _SummaryValue
    tensorboardx = require("tensorboardX", feature="TensorboardMixin", install=_INSTALL)
    summary_pb2 = require(
        "tensorboardX.proto.summary_pb2", feature="TensorboardMixin", install=_INSTALL
    )
    _Summary, _SummaryValue = summary_pb2.Summary, summary_pb2.Summary.Value
    writer_class: type[SummaryWriter] = tensorboardx.SummaryWriter
    return writer_class


def _clean_tag(tag: str) -> str:
    return _INVALID_TAG_CHARACTERS.sub("_", tag).lstrip("/")


def _every_problem(value: Any) -> str | None:
    """``check=`` of the ``log_<kind>_every`` keys: a positive whole number, or null/0 (never)."""
    if value is None or value == 0 or (value > 0 and float(value).is_integer()):
        return None
    return "a positive whole number of steps (or null/0 to turn that logging off)"


def _positive_problem(value: Any) -> str | None:
    return None if value > 0 else "a positive number"


def _metrics_problem(value: Any) -> str | None:
    if isinstance(value, (list, tuple)) and not all(isinstance(tag, str) for tag in value):
        return (
            "a list of the scalar tags shown as HParams metrics, such as [train/loss, val/accuracy]"
        )
    return None


def _hparams_problem(value: Any) -> str | None:
    if isinstance(value, (list, tuple)) and not all(isinstance(path, str) for path in value):
        return "true (all), false (none) or a list of keys such as [training/lr, model]"
    return None


def _every_key(path: str, kind: str) -> ConfigKey:
    return ConfigKey(
        path,
        None,
        f"log_{kind}_now is true when step % every == 0; unset, null or 0: never.",
        kinds=(int, float, type(None)),
        check=_every_problem,
    )


class TensorboardMixin(TagScopeMixin, _Base):
    """TensorBoard logging for a :class:`~speedrun.BaseExperiment` (through tensorboardX).

    Events go to one file per run and process in the experiment's ``Logs/`` folder: run
    ``tensorboard --logdir experiments`` to compare runs. :meth:`log_scalar` encodes its event
    directly into that file's buffer; :attr:`logger` is a tensorboardX ``SummaryWriter`` whose
    writes (``add_histogram``, ...) go into the same file, in call order. The writer is created
    on first use and left out of checkpoints; every ``checkpoint()`` flushes and fsyncs it
    first (the ``pre_checkpoint`` hook), the ``clean_up`` hook (``run()`` calls it, also on
    errors) closes it. After a checkpoint is loaded (``--resume``), a ``SessionLog.START``
    event at the loaded step tells TensorBoard to drop the earlier events from that step on,
    so the curves continue without duplicate or out-of-order steps.

    When ``run()`` starts (the ``pre_dispatch`` hook), the run's configuration is logged as
    hyperparameters for TensorBoard's HParams dashboard (one row per run).

    Config keys (all optional)
    --------------------------
    ``tensorboard/log_scalars_every``, ``log_images_every``, ``log_embeddings_every``,
    ``log_histograms_every``
        Drive :attr:`log_scalars_now` and friends: true when ``step % every == 0``. Unset,
        ``null`` or ``0`` means never (as in the original speedrun).
    ``tensorboard/flush_secs``
        Longest time (about) that logged events stay in memory before they are written to the
        file (default 30 seconds).
    ``tensorboard/buffer_bytes``
        Size of the in-memory buffer (default 65536): a full buffer is written at once.
    ``tensorboard/hparams``
        Which config keys the HParams dashboard shows: unset or ``true`` for all (flattened to
        ``training/lr``), a list of keys (a key selects its whole subtree), ``false`` for none.
    ``tensorboard/hparams_metrics``
        Scalar tags shown as the HParams dashboard's metric columns (their last value);
        unset: every scalar tag of the run.

    In a multi-process job (torchrun, SLURM tasks, ``torch.distributed``) only the main process
    (``speedrun.is_main_process()``) writes; the other ranks' ``log_*`` calls do nothing.
    """

    NOT_CHECKPOINTED: ClassVar[frozenset[str]] = frozenset(
        {
            "_tensorboard_writer",
            "_tensorboard_events",
            "_tensorboard_tags",
            "_tensorboard_purge_step",
            "_tensorboard_hparams_logged",
        }
    )
    CONFIG_KEYS: ClassVar[tuple[ConfigKey, ...]] = (
        _every_key(_SCALARS_EVERY, "scalars"),
        _every_key(_IMAGES_EVERY, "images"),
        _every_key(_EMBEDDINGS_EVERY, "embeddings"),
        _every_key(_HISTOGRAMS_EVERY, "histograms"),
        ConfigKey(
            _FLUSH_SECS,
            30,
            "Longest time (about) in seconds that logged events stay in "
            "memory before they are written to the file.",
            kinds=(int, float),
            check=_positive_problem,
        ),
        ConfigKey(
            _BUFFER_BYTES,
            65536,
            "Size of the in-memory event buffer in bytes; a full buffer is written at once.",
            kinds=(int, float),
            check=_positive_problem,
        ),
        ConfigKey(
            _MAX_QUEUE,
            None,
            "No longer applies (tensorboardX's queue is gone); a warning asks to remove it.",
        ),
        ConfigKey(
            _HPARAMS,
            True,
            "Config keys the HParams dashboard shows: true for all, a list "
            "of keys (a key selects its subtree), false for none.",
            kinds=(bool, str, list, tuple, type(None)),
            check=_hparams_problem,
        ),
        ConfigKey(
            _HPARAMS_METRICS,
            None,
            "Scalar tags shown as the HParams dashboard's metric "
            "columns (their last value); unset: every scalar tag of the run.",
            kinds=(str, list, tuple, type(None)),
            check=_metrics_problem,
        ),
    )

    _tensorboard_writer: SummaryWriter | None = None
    _tensorboard_events: Any = None
    _tensorboard_tags: dict[tuple[str, str], str] | None = None
    _tensorboard_purge_step: int | None = None

    # -- the writer ----------------------------------------------------------------------------
    @property
    def logger(self) -> SummaryWriter:
        """The tensorboardX ``SummaryWriter`` on ``Logs/`` (created on first use).

        Its events go into the same file as :meth:`log_scalar`'s. After ``close()`` (by hand
        or by the ``clean_up`` hook) the next write appends to that file again.

        Raises
        ------
        ExperimentDirectoryError
            When the experiment has no directory yet.
        """
        writer = self._tensorboard_writer
        if writer is None or writer.file_writer is None:
            writer = self._tensorboard_open()
        return writer

    def _tensorboard_open(self) -> SummaryWriter:
        """Create the writer, or reopen a closed one; returns it (events bound as well)."""
        _load_tensorboardx()
        writer = self._tensorboard_writer
        if writer is None:
            from ._writer import open_writer

            directory = self.log_directory
            if directory is None:
                raise ExperimentDirectoryError(
                    "TensorboardMixin writes to the experiment's Logs/ folder, but the "
                    "experiment has no directory: pass one on the command line (python "
                    "train.py experiments/RUN-0) or set experiment.experiment_directory first"
                )
            if self.config_value(_MAX_QUEUE) is not None:
                warnings.warn(
                    f"config '{_MAX_QUEUE}' no longer applies: events are written by "
                    f"the logging thread through a buffer of '{_BUFFER_BYTES}' "
                    f"bytes, at most about '{_FLUSH_SECS}' seconds after they were "
                    f"logged; remove the key",
                    stacklevel=3,
                )
            writer = open_writer(
                directory,
                purge_step=self._tensorboard_purge_step,
                flush_secs=self.config_value(_FLUSH_SECS),
                buffer_bytes=int(self.config_value(_BUFFER_BYTES)),
                write_to_disk=is_main_process(),
            )
            self._tensorboard_writer = writer
            self._tensorboard_purge_step = None
            if self._tensorboard_tags is None:
                self._tensorboard_tags = {}
        from ._writer import DISCARD

        events = writer.events  # reopens (appending to the same file) after a close()
        self._tensorboard_events = DISCARD if events is None else events
        return writer

    def _tensorboard_close(self) -> None:
        """Flush, fsync and close the event files (the ``clean_up`` hook).

        A later log call appends to the same file again.
        """
        writer = self._tensorboard_writer
        if writer is not None:
            writer.close()

    register_hook(_tensorboard_close, CLEAN_UP)

    def _tensorboard_sync(self) -> None:
        """Flush and fsync the event files (the ``pre_checkpoint`` hook): everything logged
        before a checkpoint is on disk when the checkpoint is."""
        writer = self._tensorboard_writer
        if writer is not None and writer.file_writer is not None:
            writer.flush(fsync=True)

    register_hook(_tensorboard_sync, PRE_CHECKPOINT)

    def _tensorboard_after_load(self) -> None:
        """The ``post_load`` hook: events logged from now on replace the loaded run's events
        from ``step`` on (a ``SessionLog.START`` event at ``step``, as ``purge_step`` writes)."""
        writer = self._tensorboard_writer
        if writer is None:
            self._tensorboard_purge_step = self.step
        else:
            if writer.file_writer is None:
                self._tensorboard_open()
            writer.purge(self.step)

    register_hook(_tensorboard_after_load, POST_LOAD)

    def _tensorboard_log_run_hparams(self) -> None:
        """The ``pre_dispatch`` hook: the configuration (``tensorboard/hparams``) as this run's
        row of the HParams dashboard, its metrics ``tensorboard/hparams_metrics``."""
        from ._hparams import hparams_metric_tags, select_hparams, write_run_hparams

        selection = self.config_value(_HPARAMS)
        metrics = hparams_metric_tags(self.config_value(_HPARAMS_METRICS), _HPARAMS_METRICS)
        if (
            selection is False
            or self.log_directory is None
            or not is_main_process()
            or self.__dict__.get("_tensorboard_hparams_logged")
        ):
            return
        hparams = select_hparams(self._config, selection, _HPARAMS)
        if not hparams:
            return
        write_run_hparams(self.logger, hparams, [_clean_tag(tag) for tag in metrics], self.step)
        self._tensorboard_hparams_logged = True

    register_hook(_tensorboard_log_run_hparams, PRE_DISPATCH)

    # -- tags ----------------------------------------------------------------------------------
    # tagscope, set_tagscope and get_full_tag come from speedrun.ext.TagScopeMixin: one scope
    # shared with every other mixin (Inferno, Firelight, IO, mpl), whatever the base order.
    @property
    def _tensorboard_scope(self) -> str:
        return self._speedrun_tagscope

    def _tensorboard_tag(self, tag: str) -> str:
        """The stored tag for ``tag``: scoped, and cleaned the way tensorboardX cleans tags."""
        if not isinstance(tag, str):
            raise TypeError(
                f"tags are strings such as 'loss' or 'train/loss', got {type(tag).__name__} {tag!r}"
            )
        cleaned = _clean_tag(self.get_full_tag(tag))
        if not cleaned:
            raise ValueError(
                f"tag {tag!r} is empty once scoped and cleaned; use a name such as 'loss'"
            )
        tags = self._tensorboard_tags
        if tags is None:
            tags = self._tensorboard_tags = {}
        if len(tags) >= _MAX_CACHED_TAGS:
            tags.clear()
        tags[(self._tensorboard_scope, tag)] = cleaned
        return cleaned

    # -- scalars -------------------------------------------------------------------------------
    def log_scalar(self, tag: str, value: Any, step: int | None = None) -> TensorboardMixin:
        """Log a number (int, float, NumPy scalar, 1-element tensor) at ``step`` (default:
        ``self.step``)."""
        events = self._tensorboard_events
        if events is None or events.closed:
            self._tensorboard_open()
            events = self._tensorboard_events
        try:
            full_tag = self._tensorboard_tags[(self._tensorboard_scope, tag)]  # type: ignore[index]  # None before the first open raises TypeError, caught below
        except (KeyError, TypeError):
            full_tag = self._tensorboard_tag(tag)
        if value.__class__ is not float:
            value = as_float(value, full_tag)
        # The event is encoded straight into the run's event file (what tensorboardX's
        # add_scalar writes, without its NumPy round trip, queue and writer thread).
        if step is None:
            step = self.step
        elif step.__class__ is not int:
            step = int(step)
        events.scalar(full_tag, value, step)
        return self

    def log_scalars(self, scalars: Mapping[str, Any], step: int | None = None) -> TensorboardMixin:
        """Log several scalars at once (``{'loss': 0.3, 'accuracy': 0.9}``), one event."""
        if not isinstance(scalars, Mapping):
            raise TypeError(
                f"log_scalars expects a mapping of tag to number, got "
                f"{type(scalars).__name__}; for one value use log_scalar(tag, value)"
            )
        if not scalars:
            return self
        events = self._tensorboard_events
        if events is None or events.closed:
            self._tensorboard_open()
            events = self._tensorboard_events
        values = []
        for tag, value in scalars.items():
            full_tag = self._tensorboard_tag(tag)
            if value.__class__ is not float:
                value = as_float(value, full_tag)
            values.append((full_tag, value))
        events.scalars(values, self.step if step is None else int(step))
        return self

    # -- other kinds ---------------------------------------------------------------------------
    def log_image(
        self, tag: str, value: Any, step: int | None = None, dataformats: str | None = None
    ) -> TensorboardMixin:
        """Log one image: a tensor or array, ``(H, W)``, ``(C, H, W)`` or ``(H, W, C)`` with
        1, 3 or 4 channels; uint8 (0..255), bool, integers in 0..255 or floats in 0..1 (clipped).

        ``dataformats`` (``'HW'``, ``'CHW'``, ``'HWC'``) overrides the layout detection, which
        reads a 3-D shape as ``CHW`` when its first axis has 1, 3 or 4 entries. The rules are
        :func:`speedrun.ext.to_image_array`'s, the same for ``print_image`` and Firelight.

        Raises
        ------
        speedrun.ext.ImageError
            (a ``ValueError`` and a ``TypeError``) for anything else.
        """
        image = to_image_array(value, dataformats, what=f"log_image({tag!r})")
        _require("PIL", "log_image", "pillow")
        self.logger.add_image(
            self.get_full_tag(tag), image, self.step if step is None else step, dataformats="HWC"
        )
        return self

    def log_figure(
        self, tag: str, figure: Any, step: int | None = None, close: bool = True
    ) -> TensorboardMixin:
        """Log a matplotlib figure (or a list of figures, as a grid) as an image.

        ``close=True`` closes the figure afterwards, like tensorboardX does.
        """
        _require("matplotlib", "log_figure", "matplotlib")
        from matplotlib.figure import Figure

        figures = figure if isinstance(figure, list) else [figure]
        if not figures or not all(isinstance(item, Figure) for item in figures):
            raise TypeError(
                f"log_figure({tag!r}) expects a matplotlib Figure (plt.figure(), "
                f"plt.subplots()[0]) or a list of them, got {type(figure).__name__}"
            )
        self.logger.add_figure(
            self.get_full_tag(tag), figure, self.step if step is None else step, close=close
        )
        return self

    def log_text(self, tag: str, text: str, step: int | None = None) -> TensorboardMixin:
        """Log a string (Markdown) to TensorBoard's Text tab."""
        if not isinstance(text, str):
            raise TypeError(
                f"log_text({tag!r}) expects a string, got {type(text).__name__}; "
                f"format it first, e.g. log_text(tag, str(value))"
            )
        self.logger.add_text(self.get_full_tag(tag), text, self.step if step is None else step)
        return self

    def log_histogram(
        self,
        tag: str,
        values: Any = _MISSING,
        bins: Any = "tensorflow",
        step: int | None = None,
        *,
        value: Any = _MISSING,
    ) -> TensorboardMixin:
        """Log the distribution of a tensor's or array's ``values`` (``bins`` as in tensorboardX:
        ``'tensorflow'``, ``'auto'``, ``'fd'``, ... or a number).

        ``value=`` (the original speedrun's keyword) is accepted as another name for ``values``.
        """
        value = _one_of(values, value, "log_histogram", "values", "value")
        array = to_numpy(value, f"log_histogram({tag!r})")
        if array.size == 0:
            raise ValueError(
                f"log_histogram({tag!r}) got an empty {type(value).__name__}; "
                f"a histogram needs at least one value"
            )
        self.logger.add_histogram(
            self.get_full_tag(tag), array, self.step if step is None else step, bins=bins
        )
        return self

    def log_embedding(
        self,
        tag: str,
        matrix: Any = _MISSING,
        images: Any = None,
        metadata: Any = None,
        step: int | None = None,
        *,
        tensor: Any = _MISSING,
    ) -> TensorboardMixin:
        """Log points for TensorBoard's Projector: ``matrix`` is ``(N, D)``; ``images``
        ``(N, C, H, W)`` thumbnails and ``metadata`` ``N`` labels are optional.

        ``tensor=`` (the original speedrun's keyword) is accepted as another name for ``matrix``.
        """
        tensor = _one_of(matrix, tensor, "log_embedding", "matrix", "tensor")
        matrix = to_numpy(tensor, f"log_embedding({tag!r})")
        if matrix.ndim != 2:
            raise ValueError(
                f"log_embedding({tag!r}) expects an (N, D) matrix of N points, "
                f"got shape {matrix.shape}"
            )
        if metadata is not None and len(metadata) != matrix.shape[0]:
            raise ValueError(
                f"log_embedding({tag!r}): metadata has {len(metadata)} labels "
                f"for {matrix.shape[0]} points; give one label per point"
            )
        label_images = None if images is None else to_numpy(images, f"log_embedding({tag!r})")
        if label_images is not None and (
            label_images.ndim != 4
            or label_images.shape[0] != matrix.shape[0]
            or label_images.shape[2] != label_images.shape[3]
        ):
            raise ValueError(
                f"log_embedding({tag!r}) expects images of shape (N, C, H, H): one "
                f"square thumbnail per point ({matrix.shape[0]} points), got shape "
                f"{label_images.shape}"
            )
        writer = self.logger
        if not is_main_process():  # tensorboardX writes projector files even without events
            return self
        writer.add_embedding(
            matrix,
            metadata=metadata,
            label_img=label_images,
            global_step=self.step if step is None else step,
            tag=self.get_full_tag(tag),
        )
        return self

    def log_hparams(
        self,
        metrics: Mapping[str, Any] | Iterable[str] | None = None,
        hparams: Mapping[str, Any] | None = None,
        step: int | None = None,
    ) -> TensorboardMixin:
        """Record this run's hyperparameters and final metrics for TensorBoard's HParams tab.

        Parameters
        ----------
        metrics
            ``{tag: value}``: each value is logged as a scalar (scoped like ``log_scalar``)
            and becomes a column of the HParams table. A ``None`` value, or a list of tags,
            names scalars you already log: the table shows their last value.
        hparams
            The hyperparameters; default: the whole config flattened to slash paths
            (``training/lr``). Numbers, booleans and strings stay; lists become strings;
            ``None`` values are left out.
        step
            Step of the events (default: ``self.step``).
        """
        _load_tensorboardx()
        from tensorboardX.summary import hparams as hparams_summaries

        from ._hparams import flatten_hparams

        if hparams is None:
            hparams = flatten_hparams(self._config)
        elif not isinstance(hparams, Mapping):
            raise TypeError(
                f"log_hparams expects hparams as a mapping of name to value, got "
                f"{type(hparams).__name__}"
            )
        else:
            hparams = flatten_hparams(hparams)
        if metrics is None:
            metrics = {}
        elif not isinstance(metrics, Mapping):
            if isinstance(metrics, str):
                raise TypeError(
                    f"log_hparams expects metrics as a mapping or a list of tags, "
                    f"got the string {metrics!r}; write [{metrics!r}]"
                )
            metrics = dict.fromkeys(metrics)
        writer = self.logger
        step = self.step if step is None else step
        values = {}
        for tag, value in metrics.items():
            full_tag = self._tensorboard_tag(tag)
            values[full_tag] = None if value is None else as_float(value, full_tag)
        experiment, start, end = hparams_summaries(hparams, dict.fromkeys(values, 0.0))
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary, step)
        logged = [
            _SummaryValue(tag=tag, simple_value=value)
            for tag, value in values.items()
            if value is not None
        ]
        if logged:
            writer.file_writer.add_summary(_Summary(value=logged), step)
        return self

    # -- gates ---------------------------------------------------------------------------------
    @property
    def log_scalars_now(self) -> bool:
        """True when ``tensorboard/log_scalars_every`` is set and divides the step."""
        every = self.get(_SCALARS_EVERY)
        if every.__class__ is not int or every <= 0:  # the fast path takes a set positive int
            every = self.config_value(_SCALARS_EVERY)
            if not every:
                return False
        return self.step % int(every) == 0

    @property
    def log_images_now(self) -> bool:
        """True when ``tensorboard/log_images_every`` is set and divides the step."""
        every = self.get(_IMAGES_EVERY)
        if every.__class__ is not int or every <= 0:  # the fast path takes a set positive int
            every = self.config_value(_IMAGES_EVERY)
            if not every:
                return False
        return self.step % int(every) == 0

    @property
    def log_embeddings_now(self) -> bool:
        """True when ``tensorboard/log_embeddings_every`` is set and divides the step."""
        every = self.get(_EMBEDDINGS_EVERY)
        if every.__class__ is not int or every <= 0:  # the fast path takes a set positive int
            every = self.config_value(_EMBEDDINGS_EVERY)
            if not every:
                return False
        return self.step % int(every) == 0

    @property
    def log_histograms_now(self) -> bool:
        """True when ``tensorboard/log_histograms_every`` is set and divides the step."""
        every = self.get(_HISTOGRAMS_EVERY)
        if every.__class__ is not int or every <= 0:  # the fast path takes a set positive int
            every = self.config_value(_HISTOGRAMS_EVERY)
            if not every:
                return False
        return self.step % int(every) == 0

    # -- export --------------------------------------------------------------------------------
    def dump_logs_to_json(self, path: str | os.PathLike[str] | None = None) -> TensorboardMixin:
        """Write every logged scalar to ``Logs/tensorboard.json`` (or ``path``), atomically.

        The format is the original's, ``{tag: [[wall_time, step, value], ...]}``, read back
        from the event files (so it also holds earlier sessions of a resumed run, minus the
        steps the resume purged). The open writer is flushed first so that every pending event
        is in the file.
        """
        _load_tensorboardx()  # reading events needs tensorboardX's protobuf classes
        from ._events import read_scalars

        directory = self.log_directory
        if directory is None:
            raise ExperimentDirectoryError(
                "dump_logs_to_json reads the experiment's Logs/ folder, but the experiment has "
                "no directory; set experiment.experiment_directory first"
            )
        if not is_main_process():
            return self
        writer = self._tensorboard_writer
        if writer is not None and writer.file_writer is not None:
            writer.flush()
        target = os.path.join(directory, "tensorboard.json") if path is None else os.fspath(path)
        atomic_write_text(target, json.dumps(read_scalars(directory)))
        return self


def _one_of(new: Any, old: Any, method: str, name: str, old_name: str) -> Any:
    """The argument given as ``name`` (the README's name) or ``old_name`` (the original's)."""
    if new is _MISSING and old is _MISSING:
        raise TypeError(
            f"{method}() missing its data argument {name!r} (or {old_name!r}, the "
            f"original speedrun's name). Fix: {method}(tag, {name}=...)"
        )
    if new is not _MISSING and old is not _MISSING:
        raise TypeError(
            f"{method}() got both {name!r} and {old_name!r}, two names for the same "
            f"argument. Fix: pass only {name}=..."
        )
    return new if new is not _MISSING else old


def _require(module: str, feature: str, package: str) -> None:
    require(module, feature=feature, install=f"pip install {package}")
