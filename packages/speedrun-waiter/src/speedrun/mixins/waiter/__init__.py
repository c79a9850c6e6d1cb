"""speedrun-waiter: queue experiments on a shared machine.

``WaiterMixin.wait()`` blocks until the processes and runs named by ``--wait.for`` have ended
and ``--wait.memory`` of RAM is available; :func:`wait_for` does the same without an experiment.
"""

from __future__ import annotations

from speedrun.ext import set_public_module

from ._errors import WAIT_TIMEOUT_EXIT_CODE, WaitTimeout
from ._loop import wait_for
from ._memory import MEMORY_UNITS, parse_memory_size
from ._waiter import WaiterMixin

__all__ = [
    "MEMORY_UNITS",
    "WAIT_TIMEOUT_EXIT_CODE",
    "WaitTimeout",
    "WaiterMixin",
    "parse_memory_size",
    "wait_for",
]

__version__ = "0.2.0"

# Last: the classes and functions above report this package as their module (tracebacks,
# repr() and pickles say speedrun.mixins.waiter.X, not its private module).
set_public_module(globals())
