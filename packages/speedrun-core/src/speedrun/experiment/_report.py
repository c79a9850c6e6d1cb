"""What a run tells its user on stderr: speedrun's errors without a traceback, a ``--resume``
whose overrides the restored objects may not follow, flags nobody reads, a ``--resume`` of
nothing."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from .._errors import ExperimentDirectoryError, SpeedrunError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType
    from typing import Any

__all__ = [
    "TRACEBACK_VARIABLE",
    "install_error_hook",
    "nothing_to_resume",
    "report_resume_overrides",
    "report_unknown_flags",
]

TRACEBACK_VARIABLE = "SPEEDRUN_TRACEBACK"
"""Set it (``SPEEDRUN_TRACEBACK=1``) to see the full traceback of speedrun's errors."""

_PACKAGE_DIRECTORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_frame(traceback: TracebackType | None) -> str | None:
    """``file:line`` of the innermost frame outside speedrun-core (where the user's code was)."""
    found = None
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIRECTORY + os.sep):
            found = f"{filename}:{traceback.tb_lineno}"
        traceback = traceback.tb_next
    return found


def install_error_hook() -> None:
    """Make an uncaught :class:`~speedrun.SpeedrunError` print its message (and where the
    user's code was) instead of a traceback through speedrun's internals; the process still
    exits with status 1. ``SPEEDRUN_TRACEBACK=1`` restores the full traceback. Other
    exceptions keep the previous hook. Installing twice is harmless."""
    previous = sys.excepthook
    if getattr(previous, "_speedrun_hook", False):
        return

    def hook(
        kind: type[BaseException], error: BaseException, traceback: TracebackType | None
    ) -> None:
        if not isinstance(error, SpeedrunError) or os.environ.get(
            TRACEBACK_VARIABLE, ""
        ).strip() not in ("", "0"):
            previous(kind, error, traceback)
            return
        where = _user_frame(traceback)
        print(f"speedrun: error: {error}", file=sys.stderr)
        print(
            f"({type(error).__name__}{f' raised from {where}' if where else ''}; set "
            f"{TRACEBACK_VARIABLE}=1 for the full traceback)",
            file=sys.stderr,
            flush=True,
        )

    hook._speedrun_hook = True  # type: ignore[attr-defined]  # marks the hook as installed
    sys.excepthook = hook


def nothing_to_resume(directory: str) -> ExperimentDirectoryError:
    """The error for ``--resume`` of a folder that is no experiment directory, naming the
    experiment directories next to it with a similar name."""
    import difflib

    from ..directory._layout import is_experiment_directory

    parent = os.path.dirname(os.path.abspath(directory))
    try:
        siblings = sorted(
            name
            for name in os.listdir(parent)
            if is_experiment_directory(os.path.join(parent, name))
        )
    except OSError:
        siblings = []
    close = difflib.get_close_matches(
        os.path.basename(os.path.normpath(directory)), siblings, n=3, cutoff=0.6
    )
    prefix = os.path.dirname(os.path.normpath(directory))
    hint = (
        f" Did you mean {' or '.join(os.path.join(prefix, name) for name in close)}?"
        if close
        else ""
    )
    what = (
        "no such folder"
        if not os.path.exists(directory)
        else "the folder is not a speedrun experiment directory"
    )
    return ExperimentDirectoryError(
        f"nothing to resume at {directory}: {what}.{hint} Start a new run without --resume."
    )


def report_resume_overrides(
    overrides: dict[str, Any], step: int, hooks: Sequence[str] = ()
) -> None:
    """Say, once, which overrides the objects restored from step ``step`` may not follow;
    ``hooks`` names the experiment's ``post_load`` hooks (they may re-apply them)."""
    from ..config._tree import short_repr

    listing = "\n".join(f"  {path} = {short_repr(value)}" for path, value in overrides.items())
    after = (
        f"the post_load hook(s) {', '.join(hooks)} run after loading and decide which values win"
        if hooks
        else "re-apply them in a post_load hook (experiment.resume_overrides lists them)"
    )
    print(
        f"speedrun: --resume from step {step} with {len(overrides)} changed config value(s):\n"
        f"{listing}\nThe config now holds them, but attributes restored from the checkpoint "
        "(an optimizer's learning rate, a model built from the config) keep their saved "
        f"values unless code sets them again: {after}. The run record keeps them under "
        "'resume_overrides'.",
        file=sys.stderr,
        flush=True,
    )


def report_unknown_flags(names: Sequence[str]) -> None:
    """Say, once, which flags nobody reads."""
    if not names:
        return
    flags = ", ".join(f"--{name}" for name in names)
    print(
        f"speedrun: ignored {flags}: not one of speedrun's flags, not declared in the "
        "experiment's COMMAND_LINE_FLAGS and not read with get_arg() before run() started. "
        "Declare your own flags (COMMAND_LINE_FLAGS = ('lr',)) or remove them.",
        file=sys.stderr,
        flush=True,
    )
