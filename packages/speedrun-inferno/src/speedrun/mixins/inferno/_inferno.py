"""``InfernoMixin``: train with an inferno ``Trainer`` built from the experiment's config.

Nothing heavy is imported with this module: torch and inferno load on first use of
``trainer``, ``model``, the loaders or ``device``.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

from speedrun import ConfigError, ExperimentDirectoryError, register_hook
from speedrun.ext import ConfigKey

from ._parsing import (
    ParsingMixin,
    _name_and_kwargs,
    create_instance,
    get_single_key_value_pair,
    locate,
)
from ._tensorboard import InfernoTensorboardSteps

__all__ = ["InfernoMixin"]

_PREFIX = "inferno_build_"


def _limit_problem(value: Any) -> str | None:
    if isinstance(value, str) and value != "inf":
        return "a whole number or 'inf'"
    return None


class InfernoMixin(InfernoTensorboardSteps, ParsingMixin):
    """Train an experiment's model with an inferno ``Trainer`` configured from YAML.

    The trainer is built on first use of :attr:`trainer`: it wraps :attr:`model`, saves its
    checkpoints (``checkpoint.pytorch``, ``best_checkpoint.pytorch``) into the experiment's
    ``Weights/`` folder, and is configured by the ``inferno_build_<step>`` methods, which run
    in :attr:`INFERNO_BUILD_ORDER` and then, alphabetically, every other
    ``inferno_build_<step>`` method the experiment defines. A step reaches the trainer under
    construction as ``self.trainer`` (or ``self._trainer``).

    Configuration (all under ``trainer/`` except ``device``, ``firelight`` and the
    :class:`ParsingMixin` keys ``model``, ``criterion``, ``metric``, ``loader``,
    ``val_loader``)::

        device: cpu                       # or cuda, cuda:1
        trainer:
          optimizer: {Adam: {lr: 0.001}}  # torch.optim or inferno name, or a dotted path
          intervals:
            validate_every: 100 iterations   # or [1, epochs], or {frequency: ..., for_num_iterations: 10}
            save_every: 1 epochs
            evaluate_metric_every: never
          max_epochs: 10                  # or max_iterations: 10000
          num_targets: 1
          tensorboard:                    # events go to <experiment>/Logs
            log_scalars_every: 1 iterations
            log_images_every: never
            log_config: true
            split_config_keys: true
          callbacks:                      # module (in inferno.trainers.callbacks) -> class -> kwargs
            essentials: {NaNDetector: {noargs: true}}
            scheduling: {AutoLRDecay: {factor: 0.5, patience: 1 epochs}}

    The original speedrun's schema is accepted as written in configs in the wild::

        trainer:
          criterion: CrossEntropyLoss     # a name from torch.nn / inferno (+ criterion_kwargs)
          metric: CategoricalError        # optional (+ metric_kwargs)
          optimizer: Adam
          optimizer_kwargs: {lr: 0.01}

    When both forms are given, today's wins: a top-level ``criterion``/``metric`` over
    ``trainer/criterion``/``trainer/metric``, and keyword arguments inside
    ``optimizer: {Adam: {...}}`` over ``optimizer_kwargs``; a warning names what is ignored.

    With a ``firelight`` key (``{tag: {Visualizer: ...}}``, a single visualizer config, or the
    path of a YAML file holding either) firelight's visualizations are logged to TensorBoard
    as images.
    """

    TRANSFORM_LOCATIONS: list[Any] = [
        "inferno.io.transform.generic",
        "inferno.io.transform.image",
        "inferno.io.transform.volume",
        "inferno.io.transform",
    ]
    #: Built-in steps, in the order they run; other ``inferno_build_*`` methods run after.
    INFERNO_BUILD_ORDER: tuple[str, ...] = (
        "criterion",
        "metric",
        "optimizer",
        "intervals",
        "limits",
        "loaders",
        "tensorboard",
        "callbacks",
    )
    _INTERVAL_KEYS = ("validate_every", "save_every", "evaluate_metric_every")

    #: The trainer and the loaders are rebuilt from the config; the resume flag is this run's.
    NOT_CHECKPOINTED: ClassVar[frozenset[str]] = frozenset(
        {
            "_trainer",
            "_train_loader",
            "_val_loader",
            "_inferno_resume_pending",
        }
    )
    CONFIG_KEYS: ClassVar[tuple[ConfigKey, ...]] = (
        ConfigKey(
            "device", "cpu", "The torch device to train on: cpu, cuda or cuda:1.", kinds=(str, int)
        ),
        ConfigKey(
            "trainer/optimizer",
            None,
            "{Adam: {lr: 0.001}} (torch.optim or inferno name, "
            "or a dotted path), or the original's Adam with trainer/optimizer_kwargs.",
            kinds=(dict, str, type(None)),
        ),
        ConfigKey(
            "trainer/optimizer_kwargs",
            None,
            "Keyword arguments of a trainer/optimizer given as a name.",
            kinds=(dict, type(None)),
        ),
        ConfigKey(
            "trainer/intervals",
            None,
            "validate_every, save_every and "
            "evaluate_metric_every as inferno frequencies ('100 iterations', '1 epochs', "
            "'never').",
            kinds=(dict, type(None)),
        ),
        ConfigKey(
            "trainer/max_epochs",
            None,
            "Stop after this many epochs (wins over max_iterations).",
            kinds=(int, float, str, type(None)),
            check=_limit_problem,
        ),
        ConfigKey(
            "trainer/max_iterations",
            None,
            "Stop after this many iterations.",
            kinds=(int, float, str, type(None)),
            check=_limit_problem,
        ),
        ConfigKey(
            "trainer/num_targets",
            1,
            "How many trailing tensors of a batch are targets.",
            kinds=(int,),
        ),
        ConfigKey(
            "trainer/callbacks",
            None,
            "Callbacks as {module: {Class: kwargs}}, modules "
            "of inferno.trainers.callbacks or dotted paths.",
            kinds=(dict, type(None)),
        ),
    )

    # -- device --------------------------------------------------------------------------------
    @property
    def device(self) -> Any:
        """The ``torch.device`` from config ``device`` (default ``'cpu'``)."""
        if getattr(self, "_inferno_device", None) is None:
            import torch

            value = self.config_value("device")
            try:
                device = torch.device(value)
            except (RuntimeError, TypeError) as exc:
                raise ConfigError(
                    f"device: expected a torch device such as 'cpu', 'cuda' or "
                    f"'cuda:1', got {value!r}"
                ) from exc
            if device.type == "cuda" and not torch.cuda.is_available():
                raise ConfigError(
                    f"device: {value!r} asks for CUDA, but torch sees no GPU on "
                    f"this machine; set device: cpu"
                )
            self._inferno_device = device
        return self._inferno_device

    # -- the trainer ---------------------------------------------------------------------------
    @property
    def trainer(self) -> Any:
        """The inferno trainer, built from the configuration on first use."""
        trainer = getattr(self, "_trainer", None)
        if trainer is None:
            trainer = self.build_trainer()
        return trainer

    def get_inferno_build_steps(self) -> list[str]:
        """Names ``<step>`` of the ``inferno_build_<step>`` methods, in the order they run."""
        cls = type(self)
        names = {
            name[len(_PREFIX) :]
            for name in dir(cls)
            if name.startswith(_PREFIX) and callable(getattr(cls, name, None))
        }
        ordered = [name for name in self.INFERNO_BUILD_ORDER if name in names]
        return ordered + sorted(names.difference(ordered))

    def build_trainer(self) -> Any:
        """Build, configure and return the trainer (kept as :attr:`trainer`)."""
        from ._callbacks import ExperimentStepCallback
        from ._trainer import SpeedrunTrainer

        directory = self.checkpoint_directory
        if directory is None:
            raise ExperimentDirectoryError(
                "InfernoMixin.trainer needs an experiment directory (checkpoints go to its "
                "Weights/ folder), but none is set: set experiment.experiment_directory"
            )
        trainer = SpeedrunTrainer(self.model).save_to_directory(directory)
        self._trainer = trainer
        try:
            for step in self.get_inferno_build_steps():
                getattr(self, _PREFIX + step)()
            trainer.register_callback(ExperimentStepCallback(self))
            self._inferno_move_to_device(trainer)
            self._inferno_check_trainer(trainer)
            if getattr(self, "_inferno_resume_pending", False):
                if os.path.isfile(os.path.join(directory, trainer._checkpoint_filename)):
                    self.load_trainer_checkpoint()
                self._inferno_resume_pending = False
        except BaseException:
            self._inferno_close_logger(trainer)
            self._trainer = None
            raise
        return trainer

    def _inferno_move_to_device(self, trainer: Any) -> None:
        import torch

        device = self.device
        if callable(getattr(trainer, "to", None)):
            trainer.to(device)  # inferno versions after 0.1.7
        elif device.type == "cpu":
            trainer.cpu()
        elif device.type == "cuda":
            if device.index is not None:
                torch.cuda.set_device(device.index)
            trainer.cuda()
        else:
            raise ConfigError(
                f"device: this inferno trains on 'cpu' or 'cuda' only, got {str(device)!r}"
            )

    def _inferno_check_trainer(self, trainer: Any) -> None:
        every = trainer.validating_every
        validates = every is not None and every.value != float("inf")  # 'never' is inf
        if validates and "validate" not in trainer._loaders:
            raise ConfigError(
                "trainer/intervals/validate_every is set, but there is no validation data: "
                "expected a 'val_loader' config (or build_val_loader() returning a DataLoader); "
                "add one, or remove validate_every"
            )

    # -- the build steps -----------------------------------------------------------------------
    def inferno_build_criterion(self) -> None:
        """Give the trainer :attr:`criterion`."""
        self.trainer.build_criterion(self.criterion)

    def inferno_build_metric(self) -> None:
        """Give the trainer :attr:`metric`, if one is configured."""
        if self.metric is not None:
            self.trainer.build_metric(self.metric)

    def inferno_build_optimizer(self) -> None:
        """Build the optimizer from ``trainer/optimizer``: ``{Adam: {lr: 0.001}}``, or the
        original speedrun's ``optimizer: Adam`` with ``optimizer_kwargs: {lr: 0.001}`` (when
        both carry keyword arguments, those inside ``optimizer`` win, with a warning)."""
        config = self.config_value("trainer/optimizer")
        if config is None:
            raise ConfigError(
                "no optimizer configured: expected 'trainer/optimizer: {Adam: "
                "{lr: 0.001}}' or 'trainer/optimizer: Adam' with "
                "'trainer/optimizer_kwargs: {lr: 0.001}' (any torch.optim or "
                "inferno optimizer, or a dotted path), or override "
                "inferno_build_optimizer()"
            )
        config = _name_and_kwargs(
            config, self.config_value("trainer/optimizer_kwargs"), "trainer/optimizer"
        )
        name, kwargs = get_single_key_value_pair(config, "trainer/optimizer")
        kwargs = dict(copy.deepcopy(kwargs) or {})
        method: Any = locate(name) if "." in name else name
        try:
            self.trainer.build_optimizer(method, **kwargs)
        except (AssertionError, TypeError, ValueError, NotImplementedError) as exc:
            raise ConfigError(
                f"trainer/optimizer: could not build {name} with {kwargs!r}: "
                f"{exc or type(exc).__name__}. Expected the name of a torch.optim "
                f"optimizer (e.g. Adam) and its keyword arguments"
            ) from exc

    def inferno_build_intervals(self) -> None:
        """Set ``validate_every``, ``save_every`` and ``evaluate_metric_every``."""
        intervals = self.config_value("trainer/intervals")
        if intervals is None:
            return
        if not isinstance(intervals, Mapping):
            raise ConfigError(
                f"trainer/intervals: expected a mapping of "
                f"{list(self._INTERVAL_KEYS)} to frequencies, got {intervals!r}"
            )
        for key, arguments in intervals.items():
            if key not in self._INTERVAL_KEYS:
                raise ConfigError(
                    f"trainer/intervals/{key}: unknown interval; expected one of "
                    f"{list(self._INTERVAL_KEYS)}"
                )
            setter = getattr(self.trainer, key)
            try:
                if isinstance(arguments, Mapping):
                    setter(**arguments)
                else:
                    setter(arguments)
            except Exception as exc:  # inferno raises assorted types for bad frequencies
                raise ConfigError(
                    f"trainer/intervals/{key}: expected a frequency such as '10 iterations', "
                    f"'1 epochs', [10, iterations], 10 or 'never', got {arguments!r} "
                    f"({type(exc).__name__}: {exc})"
                ) from exc

    def inferno_build_limits(self) -> None:
        """Stop after ``trainer/max_epochs`` or ``trainer/max_iterations``."""
        max_epochs = self.config_value("trainer/max_epochs")
        max_iterations = self.config_value("trainer/max_iterations")
        if max_epochs is not None and max_iterations is not None:
            warnings.warn(
                "trainer/max_epochs and trainer/max_iterations are both set: "
                "training stops after max_epochs, max_iterations is ignored",
                stacklevel=2,
            )
        key, value, setter = (
            ("max_epochs", max_epochs, self.trainer.set_max_num_epochs)
            if max_epochs is not None
            else ("max_iterations", max_iterations, self.trainer.set_max_num_iterations)
        )
        if value is None:
            return  # train() refuses to start without a limit
        try:
            setter(value)
        except (TypeError, AssertionError) as exc:
            raise ConfigError(
                f"trainer/{key}: expected an integer or 'inf', got {value!r}"
            ) from exc

    @property
    def train_loader(self) -> Any:
        """The training ``DataLoader``, built by :meth:`build_train_loader` on first use."""
        if getattr(self, "_train_loader", None) is None:
            self._train_loader = self.build_train_loader()
        return self._train_loader

    @property
    def val_loader(self) -> Any:
        """The validation ``DataLoader`` (or ``None``), built by :meth:`build_val_loader`."""
        if not hasattr(self, "_val_loader"):
            self._val_loader = self.build_val_loader()
        return self._val_loader

    @property
    def num_targets(self) -> int:
        """How many trailing tensors of a batch are targets (``trainer/num_targets``, 1)."""
        return int(self.config_value("trainer/num_targets"))

    def inferno_build_loaders(self) -> None:
        """Bind :attr:`train_loader` and, if there is one, :attr:`val_loader`."""
        self.trainer.bind_loader("train", self.train_loader, num_targets=self.num_targets)
        if self.val_loader is not None:
            self.trainer.bind_loader("validate", self.val_loader, num_targets=self.num_targets)

    def inferno_build_callbacks(self) -> None:
        """Register callbacks from ``trainer/callbacks`` and, with ``firelight``, its images."""
        callbacks = self.config_value("trainer/callbacks")
        if callbacks is not None:
            import inferno.trainers.callbacks as inferno_callbacks

            if not isinstance(callbacks, Mapping):
                raise ConfigError(
                    f"trainer/callbacks: expected a mapping module -> {{Class: "
                    f"kwargs}}, got {callbacks!r}"
                )
            for module_name, classes in callbacks.items():
                where = f"trainer/callbacks/{module_name}"
                module = locate(module_name, [inferno_callbacks])
                if not isinstance(classes, Mapping):
                    raise ConfigError(
                        f"{where}: expected a mapping Class -> kwargs, got {classes!r}"
                    )
                for class_name, arguments in classes.items():
                    callback = create_instance({class_name: arguments}, [module], f"{where}")
                    self.trainer.register_callback(callback)
        if self.config_value("firelight") is not None:
            self._inferno_register_firelight()

    def create_transform(self, list_of_transforms: list[Any]) -> Any:
        """An inferno ``Compose`` of transforms given as ``[{Class: kwargs}, ...]``."""
        from ._compat import import_inferno_trainers

        import_inferno_trainers()
        from inferno.io.transform import Compose

        return Compose(
            *[
                create_instance(spec, self.TRANSFORM_LOCATIONS, "transforms")
                for spec in list_of_transforms
            ]
        )

    def load_trainer_checkpoint(self, best: bool = False) -> Any:
        """Continue from the trainer's checkpoint in ``Weights/``: weights, optimizer state and
        the iteration, epoch and best-validation counters. Returns the trainer.

        The rest (loaders, callbacks, logger, intervals) stays as configured now. After
        ``--resume`` / ``load_from_checkpoint()`` this happens on its own when the trainer is
        rebuilt and ``Weights/checkpoint.pytorch`` exists.

        Parameters
        ----------
        best : bool
            Load ``best_checkpoint.pytorch`` instead of ``checkpoint.pytorch``.
        """
        import dill
        import torch

        from speedrun import CheckpointError

        trainer = self.trainer
        name = trainer._best_checkpoint_filename if best else trainer._checkpoint_filename
        path = os.path.join(trainer.save_directory, name)
        if not os.path.isfile(path):
            raise CheckpointError(
                f"no trainer checkpoint to load: expected {path!r} (written "
                f"by trainer/intervals/save_every), but it does not exist"
            )
        try:
            saved = torch.load(
                path, map_location=self.device, pickle_module=dill, weights_only=False
            )
        except Exception as exc:
            raise CheckpointError(
                f"could not read the trainer checkpoint {path!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(saved, Mapping) or "_model" not in saved:
            raise CheckpointError(
                f"{path!r} is not an inferno trainer checkpoint (expected the "
                f"trainer's saved attributes, got {type(saved).__name__})"
            )
        trainer.model.load_state_dict(saved["_model"].state_dict())
        if saved.get("_optimizer") is not None and trainer.optimizer_is_defined:
            trainer.optimizer.load_state_dict(saved["_optimizer"].state_dict())
        for counter in (
            "_iteration_count",
            "_epoch_count",
            "_batch_count",
            "_best_validation_score",
            "_last_validated_at_epoch",
            "_last_saved_at_epoch",
            "_last_metric_evaluated_at_epoch",
        ):
            if counter in saved:
                setattr(trainer, counter, saved[counter])
        return trainer

    # -- training ------------------------------------------------------------------------------
    def train(self) -> Any:
        """Fit the model (returns the trainer)."""
        trainer = self.trainer
        if trainer._max_num_iterations is None and trainer._max_num_epochs is None:
            raise ConfigError(
                "training has no end: expected 'trainer/max_epochs' or "
                "'trainer/max_iterations' in the configuration"
            )
        try:
            return trainer.fit()
        finally:
            logger: Any = getattr(trainer, "logger", None)
            if hasattr(logger, "flush"):
                logger.flush()

    # -- hooks -------------------------------------------------------------------------------
    @staticmethod
    def _inferno_close_logger(trainer: Any) -> None:
        logger = getattr(trainer, "_logger", None)
        if logger is not None and callable(getattr(logger, "close", None)):
            logger.close()

    def _inferno_clean_up(self) -> None:
        self._inferno_close_logger(getattr(self, "_trainer", None))

    register_hook(_inferno_clean_up, "clean_up")

    def _inferno_post_load(self) -> None:
        # The restored model replaced the one the trainer holds: rebuild the trainer on next
        # use, continuing from its own checkpoint (optimizer state, counters) if there is one.
        trainer = getattr(self, "_trainer", None)
        if trainer is not None:
            self._inferno_close_logger(trainer)
            self._trainer = None
        self._inferno_resume_pending = True

    register_hook(_inferno_post_load, "post_load")
