"""``IOMixin``: printing (to the screen and to ``Logs/``), progress bars, images and YAML dumps."""

from __future__ import annotations

import builtins
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from speedrun import ExperimentDirectoryError, is_main_process, register_hook
from speedrun.ext import (
    TagScopeMixin,
    plot_file,
    relative_parts,
    tagged_file,
    to_image_array,
    write_png,
)

from ._images import to_array as _to_array
from ._printfile import LineFile, Mark, current_mark, rewind
from ._progress import bars_paused, make_progress_bar, tqdm_module

if TYPE_CHECKING:
    import numpy as np

    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["IOMixin", "Printer"]

#: What ``set_printer`` accepts: ``'stdout'``, ``'tqdm'`` or a callable taking the message.
Printer = str | Callable[[Any], Any]
_PRINTER_NAMES = ("stdout", "tqdm")


class IOMixin(TagScopeMixin, _Base):
    """Printing, progress bars, images and YAML dumps for an experiment.

    Mix it into a :class:`speedrun.BaseExperiment` subclass. All state is created lazily, in
    attributes prefixed with ``_io_``. Open files and progress bars stay out of checkpoints;
    the printing settings and the size of each printed file go into them, so ``--resume``
    cuts lines printed after the checkpoint out of ``Logs/`` instead of printing them twice.

    In a multi-process run (torchrun, SLURM tasks) only the main process writes files (printed
    logs, images, YAML dumps); every process still prints to its own screen.
    """

    #: Open files, progress bars and a custom printer (functions often cannot be pickled).
    NOT_CHECKPOINTED: ClassVar[frozenset[str]] = frozenset(
        {
            "_io_files",
            "_io_progress_bars",
            "_io_all_bars",
            "_io_printer_callable",
        }
    )

    # -- bookkeeping ------------------------------------------------------------------------
    def _io_state(self, name: str, factory: Callable[[], Any]) -> Any:
        """The attribute ``name``, created with ``factory()`` on first use."""
        try:
            return self.__dict__[name]
        except KeyError:
            value = factory()
            setattr(self, name, value)
            return value

    def _io_require(self, directory: str | None, what: str, fix: str) -> str:
        if directory is None:
            raise ExperimentDirectoryError(
                f"{what} needs an experiment directory, but this experiment has none. "
                f"Fix: set experiment_directory (or pass it to the constructor){fix}."
            )
        return directory

    # -- printing ---------------------------------------------------------------------------
    @property
    def is_printing_to_file(self) -> bool:
        """Whether :meth:`print` also appends messages to a file in ``Logs/``."""
        return bool(self.__dict__.get("_io_print_to_file", False))

    @property
    def printing_to_file_name(self) -> str:
        """Name of that file, relative to ``Logs/`` (default ``'stdout'``)."""
        return str(self.__dict__.get("_io_print_filename", "stdout"))

    def print_to_file(self, yes: bool = True, fname: str = "stdout") -> IOMixin:
        """Also append every printed message to ``Logs/<fname>`` (``yes=False`` stops).

        The file is appended to (never truncated), one whole line per write, flushed at
        once: safe to follow with ``tail -f``. In a multi-process run only the main process
        writes it.
        """
        relative_parts(fname, what="print_to_file file name")
        if fname != self.printing_to_file_name:
            self._io_close_files()
        self._io_print_to_file = bool(yes)
        self._io_print_filename = fname
        if yes:
            self._io_mark_file_end(fname)
        return self

    def _io_mark_file_end(self, name: str) -> None:
        """Remember where ``Logs/<name>`` ends now, if nothing printed there yet.

        A checkpoint saved before the first message then still knows the file's size, so a
        resume cuts what was printed after it.
        """
        marks: dict[str, tuple[int, bytes]] = self._io_state("_io_print_marks", dict)
        log_directory = getattr(self, "log_directory", None)
        if name in marks or log_directory is None:
            return
        mark = current_mark(os.path.join(log_directory, *relative_parts(name, what="file name")))
        marks[name] = (mark.size, mark.tail)

    @property
    def printer(self) -> Callable[[Any], Any]:
        """The callable :meth:`print` uses by default: ``print`` unless :meth:`set_printer` said."""
        name = self.__dict__.get("_io_printer_name", "stdout")
        if name is None:
            custom: Callable[[Any], Any] | None = self.__dict__.get("_io_printer_callable")
            if custom is not None:
                return custom
            name = "stdout"  # a custom printer does not survive a checkpoint: fall back
        return self._io_resolve_printer(name)

    @staticmethod
    def _io_resolve_printer(printer: Printer) -> Callable[[Any], Any]:
        if isinstance(printer, str) and printer == "stdout":
            return builtins.print
        if isinstance(printer, str) and printer == "tqdm":
            write: Callable[[Any], Any] = tqdm_module().tqdm.write
            return write
        if callable(printer) and not isinstance(printer, str):
            return printer
        raise TypeError(
            f"Expected a printer 'stdout', 'tqdm' or a callable taking the message, got "
            f"{type(printer).__name__} {printer!r}. Fix: set_printer('stdout'), "
            f"set_printer('tqdm') or set_printer(my_function)."
        )

    def set_printer(self, printer: Printer) -> IOMixin:
        """Choose how :meth:`print` shows messages: ``'stdout'``, ``'tqdm'`` or a callable.

        A callable is not saved in checkpoints (functions often cannot be pickled); after a
        resume the printer is ``'stdout'`` until set again.
        """
        self._io_resolve_printer(printer)  # validates, and imports tqdm for 'tqdm'
        self._io_printer_name: str | None
        if isinstance(printer, str):
            self._io_printer_name = printer
            self.__dict__.pop("_io_printer_callable", None)
        else:
            self._io_printer_name = None
            self._io_printer_callable = printer
        return self

    def print_to_tqdm(self) -> IOMixin:
        """Print through ``tqdm.write`` (shorthand for ``set_printer('tqdm')``)."""
        return self.set_printer("tqdm")

    def print(self, message: Any, printer: Printer | None = None) -> IOMixin:
        """Print ``message`` with ``printer`` (default :attr:`printer`), and to the file if on.

        Live progress bars are erased while the message is written and redrawn below it, so
        printing never breaks them. With :meth:`print_to_file` on, the message is appended to
        ``Logs/<file>`` first, so the file gets every line even if the screen is gone.
        """
        show = self.printer if printer is None else self._io_resolve_printer(printer)
        if self.is_printing_to_file and is_main_process():
            self._io_write_line(str(message))
        if show is builtins.print:
            with bars_paused(sys.stdout):
                builtins.print(message, flush=True)
        elif _is_tqdm_write(show):
            show(str(message))  # tqdm.write pauses the bars itself
        else:
            with bars_paused(sys.stdout):
                show(message)
        return self

    def _io_write_line(self, text: str) -> None:
        log_directory = self._io_require(
            getattr(self, "log_directory", None),
            "print_to_file",
            ", or turn it off with print_to_file(False)",
        )
        name = self.printing_to_file_name
        path = os.path.join(log_directory, *relative_parts(name, what="print_to_file file name"))
        files: dict[str, LineFile] = self._io_state("_io_files", dict)
        handle = files.get(path)
        if handle is None or handle.closed:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle = files[path] = LineFile(path)
        mark = handle.write_line(text)
        marks: dict[str, tuple[int, bytes]] = self._io_state("_io_print_marks", dict)
        marks[name] = (mark.size, mark.tail)

    def _io_close_files(self) -> None:
        for handle in self.__dict__.get("_io_files", {}).values():
            handle.close()
        self.__dict__.get("_io_files", {}).clear()

    def _io_rewind_printed_files(self) -> None:
        """``post_load`` hook: cut printed files back to their size at the checkpoint."""
        self._io_close_files()
        if not is_main_process():  # the main process's files: it rewinds them
            return
        log_directory = getattr(self, "log_directory", None)
        marks: dict[str, tuple[int, bytes]] = self.__dict__.get("_io_print_marks", {})
        if log_directory is None or not marks:
            return
        step = getattr(self, "step", None)
        for name, (size, tail) in marks.items():
            path = os.path.join(log_directory, *relative_parts(name, what="printed file name"))
            moved = rewind(
                path,
                Mark(size, tail),
                note=f"These lines were printed after the checkpoint of step {step}.",
            )
            if moved < 0:
                warnings.warn(
                    f"Not rewinding {path!r} to the checkpoint of step {step}: the file does "
                    f"not match what this checkpoint printed (edited, replaced, or another "
                    f"experiment's log). Lines printed after the checkpoint may appear twice.",
                    stacklevel=2,
                )

    register_hook(_io_rewind_printed_files, "post_load")

    # -- arrays and images ------------------------------------------------------------------
    @staticmethod
    def to_array(value: Any) -> np.ndarray:
        """Return a torch tensor (detached, on the CPU) or a NumPy array as a NumPy array."""
        return _to_array(value)

    def print_image(self, tag: str, value: Any, dataformats: str | None = None) -> IOMixin:
        """Write ``value`` as ``Plots/<tag folders>/<name>_step_<step>.png``.

        Parameters
        ----------
        tag
            Slash-separated: ``'val/prediction'`` writes ``Plots/val/prediction_step_<step>.png``
            (inside ``set_tagscope('train')``: ``Plots/train/val/prediction_step_<step>.png``),
            the rule of :func:`speedrun.ext.plot_file`, shared with ``save_figure`` and
            ``save_image_grid``.
        value
            A torch tensor or NumPy array: (H, W) grayscale, or (C, H, W) / (H, W, C) with
            C = 1, 3 (RGB) or 4 (RGBA); uint8, bool, integers in 0..255 or floats in [0, 1]
            (clipped). The rules are :func:`speedrun.ext.to_image_array`'s, the same as
            ``log_image``'s: an ambiguous 3-D shape such as (3, 8, 4) is read as (C, H, W).
        dataformats
            ``'HW'``, ``'CHW'`` or ``'HWC'``: the layout, instead of detecting it.

        Raises
        ------
        speedrun.ext.ImageError
            (a ValueError) saying what is accepted, for anything else.
        """
        plot_directory = self._io_require(getattr(self, "plot_directory", None), "print_image", "")
        full_tag = self.get_full_tag(tag)
        relative_parts(full_tag, what="image tag")
        image = to_image_array(value, dataformats, what=f"print_image({tag!r})")
        if not is_main_process():
            return self
        step = getattr(self, "step", 0)
        write_png(plot_file(plot_directory, full_tag, step, "png", what="print_image"), image)
        return self

    # -- progress bars ----------------------------------------------------------------------
    @property
    def progress_bars(self) -> dict[str, Any]:
        """The progress bars made with a ``tag``, by tag (not saved in checkpoints)."""
        bars: dict[str, Any] = self._io_state("_io_progress_bars", dict)
        return bars

    def progress(
        self, iterable: Iterable[Any] | None = None, tag: str | None = None, **tqdm_kwargs: Any
    ) -> Any:
        """Wrap ``iterable`` in a tqdm progress bar (labelled ``tag``) and return the bar.

        In a terminal, bars nest (an inner bar clears itself when done). When the output is
        not a terminal (CI logs, SLURM files), a bar prints one plain line at most every 30
        seconds instead of redrawing. ``tqdm_kwargs`` override these defaults, e.g.
        ``mininterval=5`` or ``disable=True``. With a ``tag``, :meth:`log_progress` can set
        the bar's postfix.
        """
        if iterable is None and "iterator" in tqdm_kwargs:  # the original's keyword name
            iterable = tqdm_kwargs.pop("iterator")
        desc = tqdm_kwargs.pop("desc", tag)  # an explicit desc wins over the tag as label
        bar = make_progress_bar(iterable, desc=desc, **tqdm_kwargs)
        live = self._io_state("_io_all_bars", list)
        live[:] = [other for other in live if not other.disable]  # finished bars are closed
        live.append(bar)
        if tag is not None:
            self.progress_bars[tag] = bar
        return bar

    def log_progress(self, tag: str, **items: Any) -> IOMixin:
        """Show ``items`` (e.g. ``loss=0.3``) after the bar tagged ``tag``; no-op without one."""
        bar = self.progress_bars.get(tag)
        if bar is not None:
            bar.set_postfix(**items)
        return self

    def _io_close_handles(self) -> None:
        """``clean_up`` hook: close open progress bars and printed files."""
        bars = self.__dict__.get("_io_all_bars", [])
        for bar in reversed(bars):  # inner bars first, so outer ones end on the last line
            bar.close()
        bars.clear()
        self._io_close_files()

    register_hook(_io_close_handles, "clean_up")

    # -- YAML dumps -------------------------------------------------------------------------
    @property
    def yaml_dump_directory(self) -> str:
        """``Logs/YAMLDumps``, created on first use."""
        log_directory = self._io_require(
            getattr(self, "log_directory", None), "yaml_dump_directory", ""
        )
        folder = os.path.join(log_directory, "YAMLDumps")
        os.makedirs(folder, exist_ok=True)
        return folder

    def dump_yaml(self, tag: str, payload: Any) -> IOMixin:
        """Write ``payload`` atomically to ``Logs/YAMLDumps/<tag>.yml``.

        NumPy scalars become plain numbers; arrays and tensors are written with speedrun's
        ``!NumpyArray`` / ``!TorchTensor`` tags.
        """
        from speedrun.ext import dump_yaml

        relative_parts(tag, what="YAML dump tag")
        if not is_main_process():
            return self
        path = tagged_file(self.yaml_dump_directory, tag, suffix=".yml", what="YAML dump tag")
        dump_yaml(payload, path)
        return self


def _is_tqdm_write(function: Any) -> bool:
    """Whether ``function`` is ``tqdm.write`` (of tqdm or a subclass), which pauses bars itself."""
    if getattr(function, "__name__", "") != "write":
        return False
    tqdm = sys.modules.get("tqdm")
    bar_class = getattr(tqdm, "tqdm", None)
    owner = getattr(function, "__self__", None)
    return bar_class is not None and isinstance(owner, type) and issubclass(owner, bar_class)
