"""``MatplotlibMixin``: figures to arrays, and figures saved under ``Plots/``."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from speedrun import ExperimentDirectoryError, is_main_process
from speedrun.ext import TagScopeMixin, has_mixin, plot_file, relative_parts

from ._render import (
    close_figure,
    figure_to_array,
    new_figure,
    normalize_formats,
    require_figure,
    write_figure,
)

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["MatplotlibMixin"]


class MatplotlibMixin(TagScopeMixin, _Base):
    """matplotlib for an experiment: render figures to arrays, save them under ``Plots/``.

    Mix it into a :class:`speedrun.BaseExperiment` subclass. It never switches matplotlib's
    backend: figures are rendered through an Agg canvas of their own.
    """

    def figure2array(
        self, figure: Figure, channel_first: bool = False, scaling: str | None = None
    ) -> np.ndarray:
        """Render ``figure`` to an RGB array.

        Parameters
        ----------
        figure
            A matplotlib Figure.
        channel_first
            ``False``: shape (H, W, 3); ``True``: shape (3, H, W), as torch and TensorBoard
            expect.
        scaling
            ``None`` or ``'0-255'``: uint8 in 0..255; ``'0-1'``: float32 in [0, 1].
        """
        return figure_to_array(figure, channel_first=channel_first, scaling=scaling)

    def new_figure(self, **figure_kwargs: Any) -> Figure:
        """A Figure that pyplot does not track, e.g. ``self.new_figure(figsize=(4, 3))``.

        Draw with ``ax = fig.subplots()``. Such figures need no closing: they are freed as
        soon as nothing refers to them, which suits long runs and background threads.
        """
        return new_figure(**figure_kwargs)

    def save_figure(
        self,
        tag: str,
        figure: Figure | None = None,
        *,
        formats: str | Iterable[str] = "png",
        close: bool = True,
        tensorboard: bool | None = None,
        **savefig_kwargs: Any,
    ) -> list[str]:
        """Save ``figure`` as ``Plots/<tag folders>/<name>_step_<step>.<format>``.

        Parameters
        ----------
        tag
            Slash-separated: ``'curves/loss'`` writes ``Plots/curves/loss_step_<step>.png``
            (inside ``set_tagscope('val')``: ``Plots/val/curves/loss_step_<step>.png``), the
            rule of :func:`speedrun.ext.plot_file`, shared with ``print_image`` and
            ``save_image_grid``.
        figure
            The figure; ``None`` takes pyplot's current figure.
        formats
            ``'png'`` (default), or several, e.g. ``('png', 'pdf', 'svg')``.
        close
            Close the figure in pyplot afterwards (default), so pyplot does not keep every
            figure of a long run in memory. Figures pyplot does not track are left as they are.
        tensorboard
            Also log the figure to TensorBoard with ``log_figure``; ``None`` (default) does so
            when the experiment is a ``TensorboardMixin`` (checked with
            :func:`speedrun.ext.has_mixin`).
        **savefig_kwargs
            Passed to ``Figure.savefig``, e.g. ``dpi=150`` or ``bbox_inches='tight'``.

        Returns
        -------
        list of str
            The files written, one per format (written by the main process only).
        """
        plot_directory = getattr(self, "plot_directory", None)
        if plot_directory is None:
            raise ExperimentDirectoryError(
                "save_figure needs an experiment directory, but this experiment has none. "
                "Fix: set experiment_directory (or pass it to the constructor)."
            )
        full_tag = self.get_full_tag(tag)
        relative_parts(full_tag, what="figure tag")
        if figure is None:
            figure = _current_pyplot_figure()
        figure = require_figure(figure, "save_figure")
        has_tensorboard = has_mixin(self, "speedrun.mixins.tensorboard:TensorboardMixin")
        if tensorboard and not has_tensorboard:
            raise ValueError(
                "save_figure(tensorboard=True) needs an experiment with log_figure, got "
                f"{type(self).__name__} without it. Fix: pip install speedrun-tensorboard and "
                "add TensorboardMixin to the experiment's base classes, or pass "
                "tensorboard=None."
            )
        fmts = normalize_formats(formats, figure)
        step = getattr(self, "step", 0)
        paths = []
        for fmt in fmts:
            path = plot_file(plot_directory, full_tag, step, fmt, what="save_figure")
            if is_main_process():  # in a multi-process run, only the main process writes
                write_figure(figure, path, fmt, **savefig_kwargs)
            paths.append(path)
        if has_tensorboard and tensorboard is not False:
            # Closing is ours to do (or not, with close=False): ask log_figure not to.
            self.log_figure(tag, figure, step=step, close=False)  # type: ignore[attr-defined]  # log_figure comes from TensorboardMixin in the experiment's MRO
        if close:
            close_figure(figure)
        return paths


def _current_pyplot_figure() -> Figure:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None or not pyplot.get_fignums():
        raise ValueError(
            "save_figure(tag) without a figure saves pyplot's current figure, but there is "
            "none. Pass the figure: save_figure(tag, fig)."
        )
    return pyplot.gcf()  # type: ignore[no-any-return]  # pyplot is imported lazily (untyped Any)
