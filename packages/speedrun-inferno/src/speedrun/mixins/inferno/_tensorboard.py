"""TensorBoard for ``InfernoMixin``: the logger step, the configuration as text, and firelight visualizations (the part of the mixin that writes events)."""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from speedrun import ConfigError
from speedrun.ext import ConfigKey, TagScopeMixin, has_mixin, load_yaml, require

if TYPE_CHECKING:
    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["FIRELIGHT_KEY", "InfernoTensorboardSteps"]

# firelight (and the scikit-learn and matplotlib it imports) are an extra of speedrun-inferno.
_FIRELIGHT_INSTALL = "pip install 'speedrun-inferno[firelight]'"

#: ``firelight``, read by InfernoMixin and by speedrun-firelight's FirelightMixin alike: the
#: same declaration (one default) in both.
FIRELIGHT_KEY = ConfigKey(
    "firelight",
    None,
    "firelight visualizers: {tag: {Visualizer: ...}}, one visualizer config, "
    "or the path of a YAML file holding either.",
    kinds=(dict, str, type(None)),
)


def _tensorboard_problem(value: Any) -> str | None:
    if value is False:
        return (
            "a mapping of logger options (log_scalars_every, log_images_every, ...), true "
            "for the defaults, or null for no logger"
        )
    return None


class InfernoTensorboardSteps(TagScopeMixin, _Base):
    """``inferno_build_tensorboard`` and ``log_configuration`` of
    :class:`~speedrun.mixins.inferno.InfernoMixin`; the tag scope is
    :class:`speedrun.ext.TagScopeMixin`'s, shared with every other mixin."""

    trainer: Any

    CONFIG_KEYS: ClassVar[tuple[ConfigKey, ...]] = (
        ConfigKey(
            "trainer/tensorboard",
            None,
            "Options of the trainer's TensorBoard logger "
            "(log_scalars_every, log_images_every, log_config, split_config_keys, ...); "
            "true for the defaults, unset for no logger.",
            kinds=(dict, bool, type(None)),
            check=_tensorboard_problem,
        ),
        FIRELIGHT_KEY,
    )

    # tagscope, set_tagscope and get_full_tag come from speedrun.ext.TagScopeMixin: the one scope
    # TensorboardMixin, Firelight and IO use too.

    def inferno_build_tensorboard(self) -> None:
        """Log to TensorBoard (``Logs/``) if ``trainer/tensorboard`` is configured."""
        from ._callbacks import TensorboardXLogger

        config = self.config_value("trainer/tensorboard")
        if config is None:
            return
        if config is True:
            config = {}
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"trainer/tensorboard: expected a mapping of logger options "
                f"(log_scalars_every, log_images_every, ...), got {config!r}"
            )
        options = dict(copy.deepcopy(config))
        log_config = options.pop("log_config", True)
        split_keys = options.pop("split_config_keys", True)
        if options.pop("log_anywhere", None) is not None:
            warnings.warn(
                "trainer/tensorboard/log_anywhere is not supported by speedrun and is ignored",
                stacklevel=2,
            )
        log_directory: Any = options.pop("log_directory", None) or self.log_directory
        shared = None
        if (
            os.path.abspath(log_directory) == os.path.abspath(self.log_directory or "")
            and self._inferno_has_tensorboard_mixin()
        ):
            # read the mixin's logger on each use: it reopens its writer after a load
            shared = self._inferno_tensorboard_mixin_writer
        try:
            logger = TensorboardXLogger(writer=shared, **options)
        except TypeError as exc:
            raise ConfigError(
                f"trainer/tensorboard: {exc}. Expected options among log_scalars_every, "
                f"log_images_every, send_image_at_batch_indices, send_image_at_channel_indices, "
                f"send_volume_at_z_indices, log_directory, log_config, split_config_keys"
            ) from exc
        self.trainer.build_logger(logger, log_directory=log_directory)
        if log_config:
            self.log_configuration(split_keys)

    def _inferno_has_tensorboard_mixin(self) -> bool:
        return has_mixin(self, "speedrun.mixins.tensorboard:TensorboardMixin")

    def _inferno_tensorboard_mixin_writer(self) -> Any:
        """The ``TensorboardMixin``'s writer (``None`` without that mixin)."""
        if not self._inferno_has_tensorboard_mixin():
            return None
        return self.logger  # type: ignore[attr-defined]  # logger comes from TensorboardMixin in the experiment's MRO

    def _inferno_summary_writer(self) -> Any:
        from ._callbacks import TensorboardXLogger

        trainer = getattr(self, "_trainer", None)
        logger = getattr(trainer, "logger", None)
        if isinstance(logger, TensorboardXLogger):
            return logger.writer
        writer = self._inferno_tensorboard_mixin_writer()
        if writer is None:
            raise ConfigError(
                "no TensorBoard writer: expected 'trainer/tensorboard' in the "
                "configuration (or TensorboardMixin among the experiment's bases)"
            )
        return writer

    def log_configuration(self, split_keys: bool = True) -> None:
        """Write the YAML files of ``Configurations/`` to TensorBoard as text (step 0).

        With ``split_keys`` each top-level key gets its own tag ``<key>/<file name>``.
        """
        directory = self.configuration_directory
        if directory is None or not os.path.isdir(directory):
            return
        writer = self._inferno_summary_writer()
        for file_name in sorted(os.listdir(directory)):
            if not file_name.endswith((".yml", ".yaml")):
                continue
            with open(os.path.join(directory, file_name), encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            sections: list[tuple[str, list[str]]] = []
            if split_keys:
                for line in lines:
                    top_level = line[:1] not in ("", " ", "\t", "#", "-") and ":" in line
                    if top_level:
                        key, rest = line.split(":", 1)
                        sections.append((key.strip(), [rest.strip()] if rest.strip() else []))
                    elif sections:
                        sections[-1][1].append(line)
            else:
                sections = [("", lines)]
            for key, body in sections:
                tag = f"{key}/{file_name}" if key else file_name
                text = "\n".join("    " + line for line in body) or "    (empty)"
                writer.add_text(self.get_full_tag(tag), text, global_step=0)

    def _inferno_register_firelight(self) -> None:
        from ._callbacks import TensorboardXLogger

        if not isinstance(self.trainer.logger, TensorboardXLogger):
            raise ConfigError(
                "firelight: visualizations are logged to TensorBoard, but no "
                "logger is configured: add 'trainer/tensorboard: {}' (and "
                "log_images_every) to the configuration"
            )
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        feature, install = "InfernoMixin's 'firelight' config", _FIRELIGHT_INSTALL
        try:
            require("firelight", feature=feature, install=install)
            config_parsing = require("firelight.config_parsing", feature=feature, install=install)
            get_visualization_callback = require(
                "firelight.inferno_callback", feature=feature, install=install
            ).get_visualization_callback
        finally:  # firelight calls logging.basicConfig on import: undo that
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
            root.setLevel(level)
        config = copy.deepcopy(self.config_value("firelight"))
        if isinstance(config, (str, os.PathLike)):  # the original's form: a YAML file
            path = os.fspath(config)
            if not os.path.isfile(path):
                raise ConfigError(
                    f"firelight: expected a visualizer config mapping or the path "
                    f"of a YAML file holding one, got {path!r}, which does not "
                    f"exist"
                )
            config = load_yaml(path)
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"firelight: expected a mapping tag -> visualizer config, got {config!r}"
            )
        config = dict(config)
        config.pop("log_anywhere", None)
        if len(config) == 1 and isinstance(vars(config_parsing).get(next(iter(config))), type):
            config = {"firelight": config}  # one visualizer config (FirelightMixin's form)
        try:
            callback = get_visualization_callback(config)
        except Exception as exc:
            raise ConfigError(
                f"firelight: could not build the visualizers: {type(exc).__name__}: {exc}"
            ) from exc
        self.trainer.register_callback(callback)
