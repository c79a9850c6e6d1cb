"""Progress bars that behave in terminals and in log files, and printing that keeps them intact.

In a terminal, bars are ordinary tqdm bars redrawn in place; nested bars (epochs over steps)
stack, and an inner bar clears itself when done. When the bar's stream is not a terminal (CI
logs, SLURM output files), redrawing in place would fill the file with carriage returns and
cursor movements, so the bar instead prints one complete, plain line at most every
:data:`LOG_INTERVAL` seconds, plus a final line when it closes.

tqdm is imported inside the functions, never at module import.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["LOG_INTERVAL", "is_terminal", "make_progress_bar", "bars_paused", "tqdm_module"]

#: Seconds between two lines of a bar whose output is not a terminal.
LOG_INTERVAL = 30.0

_line_class: Any = None


def tqdm_module() -> Any:
    """Import and return ``tqdm``, or raise an ImportError naming the fix."""
    from speedrun.ext import require

    return require(
        "tqdm",
        feature="speedrun-io (progress bars)",
        install="pip install speedrun-io (or pip install tqdm)",
    )


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, closed streams)."""
    if stream is None:
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _line_tqdm_class() -> Any:
    """The tqdm subclass used for non-terminal output (built once, on first use)."""
    global _line_class
    if _line_class is not None:
        return _line_class
    tqdm = tqdm_module()

    class LogLineTqdm(tqdm.tqdm):  # type: ignore[misc, name-defined]  # tqdm is imported lazily
        """A tqdm bar that prints one whole line per refresh and never redraws in place.

        Lines are printed only when progress was made since the previous line, so refreshes
        caused by printing or by ``set_postfix`` add nothing to the log.
        """

        _last_line_n: float | None = None

        def clear(self, nolock: bool = False) -> None:
            """Nothing is drawn in place, so there is nothing to erase."""

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            if msg is not None:
                if not msg:  # a request to erase the bar: nothing to erase
                    return False
                self._write_line(msg)
                return True
            if self.n == self._last_line_n or self.n == self.initial:
                return True
            self._write_line(self.__str__())
            return True

        def _write_line(self, line: str) -> None:
            self._last_line_n = self.n
            self.fp.write(line + "\n")
            getattr(self.fp, "flush", lambda: None)()

        def close(self) -> None:
            if self.disable:
                return
            shown = hasattr(self, "last_print_t") and getattr(self, "sp", None) is not None
            if shown and self.n != self._last_line_n:
                with self._lock:
                    self._ema_dt = lambda: None  # final line: overall rate, as tqdm does
                    self._write_line(self.__str__())
            self.leave = False  # the final line is out; tqdm must not print it again
            super().close()

    _line_class = LogLineTqdm
    return _line_class


def make_progress_bar(
    iterable: Iterable[Any] | None = None, *, desc: str | None = None, **tqdm_kwargs: Any
) -> Any:
    """Create a tqdm bar suited to where it writes.

    Parameters
    ----------
    iterable
        What to iterate over; ``None`` for a manual bar (``total=...``, ``bar.update()``).
    desc
        The bar's label.
    **tqdm_kwargs
        Passed to tqdm; they override the defaults chosen here. Defaults: ``leave=None``
        (top-level bars stay, nested bars clear when done); in a terminal
        ``dynamic_ncols=True``; elsewhere ``mininterval=maxinterval=LOG_INTERVAL`` and
        ``ascii=True``.
    """
    tqdm = tqdm_module()
    stream = tqdm_kwargs.get("file")
    if stream is None:
        stream = sys.stderr
    options: dict[str, Any] = {"leave": None}
    if desc is not None:
        options["desc"] = desc
    if is_terminal(stream):
        options["dynamic_ncols"] = True
        bar_class = tqdm.tqdm
    else:
        interval = float(tqdm_kwargs.get("mininterval", LOG_INTERVAL))
        options.update(mininterval=interval, maxinterval=max(interval, LOG_INTERVAL), ascii=True)
        bar_class = _line_tqdm_class()
    options.update(tqdm_kwargs)
    return bar_class(iterable, **options)


@contextlib.contextmanager
def bars_paused(stream: IO[str] | None = None) -> Iterator[None]:
    """Erase live bars sharing a screen with ``stream`` while the body prints, then redraw them.

    Does nothing (and imports nothing) when tqdm was never imported: then no bar exists.
    """
    tqdm = sys.modules.get("tqdm")
    bar_class = getattr(tqdm, "tqdm", None)
    if bar_class is None:
        yield
        return
    with bar_class.external_write_mode(file=stream if stream is not None else sys.stdout):
        yield
