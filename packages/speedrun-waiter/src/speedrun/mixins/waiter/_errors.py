"""The error raised when a wait gives up, and the exit status it ends a script with."""

from __future__ import annotations

from speedrun import SpeedrunError

__all__ = ["WAIT_TIMEOUT_EXIT_CODE", "WaitTimeout"]

#: Exit status of a script whose :class:`WaitTimeout` nobody caught. 124 is what coreutils'
#: ``timeout`` uses, so shell scripts and SLURM job chains can tell "gave up waiting" apart from
#: a crash (status 1) with ``if [ $? -eq 124 ]``.
WAIT_TIMEOUT_EXIT_CODE: int = 124


class WaitTimeout(SpeedrunError, SystemExit):
    """A wait reached its ``--wait.timeout`` while something it waited for was still pending.

    It is a :class:`~speedrun.SpeedrunError` (so ``except SpeedrunError`` and
    ``except Exception`` catch it) and also a :class:`SystemExit` whose ``code`` is
    :data:`WAIT_TIMEOUT_EXIT_CODE`: when nothing catches it, Python ends the script with exit
    status 124 instead of printing a traceback. The waiter prints the one-line reason before
    raising, so the log says why.

    Attributes
    ----------
    pending : tuple of str
        Descriptions of what was still pending when the wait gave up.
    waited : float
        Seconds spent waiting.
    """

    def __init__(self, message: str, *, pending: tuple[str, ...] = (), waited: float = 0.0) -> None:
        super().__init__(message)
        self.code = WAIT_TIMEOUT_EXIT_CODE
        self.pending = tuple(pending)
        self.waited = float(waited)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "gave up waiting"

    def __reduce__(self):  # type: ignore[no-untyped-def]  # pickle's reduce tuple has no useful type
        # Keep the keyword-only attributes when the error crosses a process boundary.
        return (_rebuild, (str(self), self.pending, self.waited))


def _rebuild(message: str, pending: tuple[str, ...], waited: float) -> WaitTimeout:
    return WaitTimeout(message, pending=pending, waited=waited)
