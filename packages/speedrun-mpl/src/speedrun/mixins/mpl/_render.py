"""Rendering matplotlib figures to arrays and files without touching the global backend.

matplotlib and NumPy are imported inside the functions, never at module import.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

from speedrun.ext import atomic_open

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

__all__ = [
    "SCALINGS",
    "close_figure",
    "figure_to_array",
    "new_figure",
    "normalize_formats",
    "render_rgba",
    "require_figure",
    "write_figure",
]

#: The values ``figure2array`` accepts for ``scaling``.
SCALINGS = (None, "0-255", "0-1")


def _matplotlib() -> Any:
    """matplotlib, with ``matplotlib.figure`` imported (a missing matplotlib is named first)."""
    from speedrun.ext import require

    install = "pip install speedrun-mpl (or pip install matplotlib)"
    matplotlib = require("matplotlib", feature="speedrun-mpl", install=install)
    require("matplotlib.figure", feature="speedrun-mpl", install=install)
    return matplotlib


def require_figure(figure: Any, what: str) -> Figure:
    """Return ``figure`` if it is a matplotlib Figure, else raise a TypeError with the fix."""
    matplotlib = _matplotlib()
    if isinstance(figure, matplotlib.figure.Figure):
        return cast("Figure", figure)
    hint = ""
    if isinstance(figure, matplotlib.figure.SubFigure) or hasattr(figure, "get_figure"):
        hint = " For an Axes or SubFigure, pass its figure: ax.figure."
    raise TypeError(
        f"{what} expects a matplotlib.figure.Figure, got {type(figure).__module__}."
        f"{type(figure).__qualname__}.{hint}"
    )


def new_figure(**figure_kwargs: Any) -> Figure:
    """A Figure drawn with Agg that pyplot does not track: freed as soon as it is dropped."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**figure_kwargs)
    FigureCanvasAgg(figure)
    return figure


def render_rgba(figure: Figure) -> np.ndarray:
    """Draw ``figure`` with Agg and return a copy of its pixels, shape (H, W, 4), uint8.

    A figure whose canvas already is an Agg canvas (the Agg backend, and interactive backends
    such as QtAgg or TkAgg) is drawn on it. Any other figure is drawn on a temporary Agg canvas
    and gets its own canvas back afterwards; the global backend is never changed.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = figure.canvas
    if isinstance(canvas, FigureCanvasAgg):
        canvas.draw()  # type: ignore[no-untyped-call]  # matplotlib's Agg canvas is unannotated
        return np.array(canvas.buffer_rgba(), dtype=np.uint8)  # type: ignore[no-untyped-call]  # matplotlib's Agg canvas is unannotated
    temporary = FigureCanvasAgg(figure)  # attaches itself to the figure ...
    try:
        temporary.draw()  # type: ignore[no-untyped-call]  # matplotlib's Agg canvas is unannotated
        return np.array(temporary.buffer_rgba(), dtype=np.uint8)  # type: ignore[no-untyped-call]  # matplotlib's Agg canvas is unannotated
    finally:
        figure.set_canvas(canvas)  # ... so give the figure its own canvas back


def figure_to_array(
    figure: Any, channel_first: bool = False, scaling: str | None = None
) -> np.ndarray:
    """Render ``figure`` to an RGB array.

    Parameters
    ----------
    figure
        A matplotlib Figure.
    channel_first
        ``False``: shape (H, W, 3); ``True``: shape (3, H, W).
    scaling
        ``None`` or ``'0-255'``: uint8 in 0..255; ``'0-1'``: float32 in [0, 1].

    Returns
    -------
    numpy.ndarray
        A new, C-contiguous array (later draws do not change it).
    """
    if scaling not in SCALINGS:
        raise ValueError(
            f"figure2array expects scaling None, '0-255' or '0-1', got {scaling!r}. Use "
            f"'0-255' for uint8 pixels or '0-1' for float32 pixels in [0, 1]."
        )
    import numpy as np

    rgb = render_rgba(require_figure(figure, "figure2array"))[..., :3]
    if channel_first:
        rgb = np.moveaxis(rgb, -1, 0)
    rgb = np.ascontiguousarray(rgb)
    if scaling == "0-1":
        scaled: np.ndarray = rgb.astype(np.float32) / np.float32(255.0)
        return scaled
    return rgb


def normalize_formats(formats: str | Any, figure: Figure) -> list[str]:
    """Turn ``'png'``, ``'.pdf'`` or ``['png', 'svg']`` into a checked list of file types."""
    requested = [formats] if isinstance(formats, str) else list(formats)
    supported = figure.canvas.get_supported_filetypes()
    result: list[str] = []
    for entry in requested:
        if not isinstance(entry, str):
            raise TypeError(
                f"save_figure expects formats as strings like 'png', 'pdf', 'svg', got "
                f"{type(entry).__name__} {entry!r}."
            )
        fmt = entry.lower().lstrip(".")
        if fmt not in supported:
            raise ValueError(
                f"save_figure cannot write format {entry!r}; matplotlib writes: "
                f"{', '.join(sorted(supported))}. Use e.g. formats=('png', 'pdf')."
            )
        if fmt not in result:
            result.append(fmt)
    if not result:
        raise ValueError("save_figure needs at least one format, got none. Use formats='png'.")
    return result


def write_figure(figure: Figure, path: str, fmt: str, **savefig_kwargs: Any) -> None:
    """Save ``figure`` to ``path`` in format ``fmt``, atomically (no partial files on errors)."""
    with atomic_open(path, "wb", durable=False) as handle:
        figure.savefig(handle, format=fmt, **savefig_kwargs)


def close_figure(figure: Figure) -> None:
    """Let pyplot forget ``figure`` (pyplot keeps every figure it made until closed).

    Does nothing for figures pyplot never saw, and never imports pyplot.
    """
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(figure)
