"""``FirelightMixin``: image grids of tensors with firelight, saved as PNG or logged.

Nothing heavy is imported with this module: firelight, torch, NumPy and matplotlib load on
first use.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from speedrun import ConfigError, is_main_process
from speedrun.ext import (
    ConfigKey,
    TagScopeMixin,
    has_mixin,
    plot_file,
    require,
    to_image_array,
    write_png,
)

if TYPE_CHECKING:
    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["FirelightMixin", "import_firelight"]

_INSTALL_HINT = "pip install speedrun-firelight"


def import_firelight() -> Any:
    """Import firelight without letting it reconfigure the application's logging.

    firelight 0.2 calls ``logging.basicConfig(level=INFO, stream=sys.stdout)`` on import,
    which would print every INFO record of every library; that handler and level are undone.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        firelight = require("firelight", feature="FirelightMixin", install=_INSTALL_HINT)
        # firelight's visualizers import scikit-learn and matplotlib: a missing one is named
        require("firelight.config_parsing", feature="FirelightMixin", install=_INSTALL_HINT)
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return firelight


def _resolve_dotted_visualizers(config: Any, firelight: Any, source: str) -> Any:
    """Replace ``{package.module.MyVisualizer: ...}`` keys by the class name, made known to
    firelight (0.2.1 looks dotted paths up but then drops the class)."""
    from firelight.visualizers.base import BaseVisualizer

    if isinstance(config, list):
        return [_resolve_dotted_visualizers(item, firelight, source) for item in config]
    if not isinstance(config, dict):
        return config
    resolved = {}
    for key, value in config.items():
        value = _resolve_dotted_visualizers(value, firelight, source)
        if isinstance(key, str) and "." in key and len(config) == 1:
            import pydoc

            located = pydoc.locate(key)
            if isinstance(located, type) and issubclass(located, BaseVisualizer):
                namespace = vars(firelight.config_parsing)
                known = namespace.get(located.__name__)
                if known is not None and known is not located:
                    raise ConfigError(
                        f"{source}: {key!r} has the class name of firelight's "
                        f"own {located.__name__}; rename the class"
                    )
                setattr(firelight.config_parsing, located.__name__, located)
                key = located.__name__
        resolved[key] = value
    return resolved


def _build_visualizer(config: Any, source: str) -> Any:
    firelight = import_firelight()
    from firelight.visualizers.base import BaseVisualizer

    if isinstance(config, BaseVisualizer):
        return config
    if not isinstance(config, Mapping) or len(config) != 1:
        raise ConfigError(
            f"{source}: expected a firelight visualizer config, a mapping with one entry "
            f"{{VisualizerName: {{...}}}} (e.g. {{ImageGridVisualizer: {{visualizers: [...]}}}}), "
            f"got {config!r}"
        )
    config = _resolve_dotted_visualizers(copy.deepcopy(dict(config)), firelight, source)
    try:
        # firelight replaces nested configs by visualizers in place: give it a copy.
        return firelight.get_visualizer(config)
    except Exception as exc:
        detail = str(exc) or repr(exc)
        raise ConfigError(
            f"{source}: firelight could not build the visualizer: {type(exc).__name__}: {detail}"
        ) from exc


def _visualizer_from_file(file_name: str | os.PathLike[str]) -> Any:
    import yaml

    path = os.fspath(file_name)
    if not os.path.isfile(path):
        raise ConfigError(
            f"firelight config file {path!r} does not exist: expected a YAML "
            f"file holding a visualizer config"
        )
    # firelight's own reader calls yaml.load without a Loader, which PyYAML 6 refuses.
    with open(path, encoding="utf-8") as handle:
        try:
            config = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise ConfigError(f"firelight config file {path!r} is not valid YAML: {exc}") from exc
    return _build_visualizer(config, f"firelight config file {path!r}")


def _as_tensors(states: Mapping[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    def convert(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value)
        if isinstance(value, list):
            return [convert(item) for item in value]
        if torch.is_tensor(value):
            return value.detach().cpu()
        return value

    return {key: convert(value) for key, value in states.items()}


class FirelightMixin(TagScopeMixin, _Base):
    """Visualize tensors (inputs, targets, predictions...) with a firelight visualizer.

    The visualizer comes from the configuration key ``firelight`` (a firelight config,
    e.g. ``{ImageGridVisualizer: {visualizers: [...]}}``) or, with :meth:`load_visualizer`,
    from a YAML file.
    """

    #: Visualizers hold colormaps and functions: rebuilt from the config, never checkpointed.
    NOT_CHECKPOINTED: ClassVar[frozenset[str]] = frozenset(
        {
            "_firelight_visualizer",
            "_firelight_grid",
        }
    )
    #: ``firelight`` is read by speedrun-inferno's InfernoMixin too: same default and kinds.
    CONFIG_KEYS: ClassVar[tuple[ConfigKey, ...]] = (
        ConfigKey(
            "firelight",
            None,
            "The firelight visualizer config ({ImageGridVisualizer: "
            "{visualizers: [...]}}), or the path of a YAML file holding one.",
            kinds=(dict, str, type(None)),
        ),
    )

    @property
    def visualizer(self) -> Any:
        """The firelight visualizer, built from config ``firelight`` on first use."""
        visualizer = getattr(self, "_firelight_visualizer", None)
        if visualizer is None:
            visualizer = self.load_visualizer()
            self._firelight_keep(visualizer)
        return visualizer

    @visualizer.setter
    def visualizer(self, value: Any) -> None:
        self._firelight_keep(value)

    def _firelight_keep(self, visualizer: Any) -> None:
        self._firelight_visualizer = visualizer

    def load_visualizer(self, file_name: str | os.PathLike[str] | None = None) -> Any:
        """Build a visualizer from the YAML file ``file_name``, or from config ``firelight``.

        A visualizer loaded from a file also becomes :attr:`visualizer`.

        Raises
        ------
        ConfigError
            The config is missing or firelight refuses it (the message names where it came
            from and firelight's own error).
        """
        if file_name is None:
            return self._firelight_from_config()
        visualizer = _visualizer_from_file(file_name)
        self._firelight_keep(visualizer)
        return visualizer

    def get_firelight_visualizer(self, file_name: str | os.PathLike[str] | None = None) -> Any:
        """A newly built visualizer (from ``file_name`` or config ``firelight``)."""
        if file_name is None:
            return self._firelight_from_config()
        return _visualizer_from_file(file_name)

    def _firelight_from_config(self) -> Any:
        config = self.config_value("firelight")
        if isinstance(config, str):
            if not os.path.isfile(config):
                raise ConfigError(
                    f"config key 'firelight': expected a firelight visualizer config, a mapping "
                    f"with one entry {{VisualizerName: {{...}}}}, or the path of a YAML file "
                    f"holding one; got {config!r}, which is not a file"
                )
            return _visualizer_from_file(config)
        if config is None:
            raise ConfigError(
                "no firelight visualizer configured: expected a 'firelight' key in the "
                "configuration (e.g. firelight: {ImageGridVisualizer: {visualizers: "
                "[{IdentityVisualizer: {input: prediction}}]}}), or call "
                "load_visualizer('path/to/visualizer.yml')"
            )
        return _build_visualizer(config, "config key 'firelight'")

    def _firelight_grid_visualizer(self) -> Any:
        """:attr:`visualizer`, laid out by an ``ImageGridVisualizer`` if it is not one."""
        visualizer = self.visualizer
        cached = getattr(self, "_firelight_grid", None)
        if cached is not None and cached[0] is visualizer:
            return cached[1]
        import_firelight()
        from firelight.visualizers.container_visualizers import ImageGridVisualizer

        grid = (
            visualizer
            if isinstance(visualizer, ImageGridVisualizer)
            else ImageGridVisualizer(visualizers=[visualizer])
        )
        self._firelight_grid = (visualizer, grid)
        return grid

    def get_image_grid(self, states: Mapping[str, Any]) -> Any:
        """Run the visualizer on ``states``; the image as a ``(H, W, 4)`` float array in [0, 1].

        A visualizer that is not an image grid (``IdentityVisualizer``...) is laid out by a
        default ``ImageGridVisualizer`` (rows: height, channels; columns: width, batch).

        Parameters
        ----------
        states : mapping
            The visualizer's inputs by name (``inputs``, ``target``, ``prediction``...): torch
            tensors, NumPy arrays, or lists of them.
        """
        import numpy as np
        import torch

        if not isinstance(states, Mapping):
            raise TypeError(
                f"get_image_grid expects a mapping of state names to tensors "
                f"(e.g. {{'prediction': tensor}}), got {type(states).__name__}"
            )
        visualizer = self._firelight_grid_visualizer()
        with torch.no_grad():
            image = visualizer(**_as_tensors(states))
        if torch.is_tensor(image):
            image = image.detach().cpu().numpy()
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)

    def save_image_grid(self, states: Mapping[str, Any], plot_name: str = "plots") -> list[str]:
        """Write the image grid to ``Plots/<plot_name>_step_<step>.png``; returns ``[path]``.

        ``plot_name`` is a tag like any other: ``'val/grid'`` writes
        ``Plots/val/grid_step_<step>.png``, and the experiment's tag scope applies (the rule
        of :func:`speedrun.ext.plot_file`, shared with ``print_image`` and ``save_figure``).
        Like every ``save_*`` method, it returns the list of files written.
        """
        full_tag = self.get_full_tag(plot_name)
        path = plot_file(self.plot_directory, full_tag, self.step, "png", what="save_image_grid")
        image = to_image_array(
            self.get_image_grid(states), "HWC", what=f"save_image_grid({plot_name!r})"
        )
        if is_main_process():
            write_png(path, image)
        return [path]

    def log_image_grid(
        self, states: Mapping[str, Any], tag: str = "image_grid", step: int | None = None
    ) -> FirelightMixin:
        """Log the image grid to TensorBoard (needs ``TensorboardMixin``); returns ``self``.

        Transparency is composited onto white, as firelight's inferno callback does.
        """
        if not has_mixin(self, "speedrun.mixins.tensorboard:TensorboardMixin"):
            raise AttributeError(
                f"log_image_grid logs through TensorboardMixin, which {type(self).__name__} "
                f"does not have: install it (pip install speedrun-tensorboard) and add "
                f"TensorboardMixin to the experiment's bases, or use save_image_grid()"
            )
        image = self.get_image_grid(states)
        if image.ndim == 3 and image.shape[-1] == 4:
            alpha = image[..., 3:4]
            image = image[..., :3] * alpha + (1.0 - alpha)
        self.log_image(tag, image, step=step, dataformats="HWC")  # type: ignore[attr-defined]  # log_image comes from TensorboardMixin in the experiment's MRO
        return self
