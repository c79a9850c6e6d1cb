"""Exceptions raised by speedrun.

Every error message says what was expected, what was received, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "SpeedrunError",
    "ConfigError",
    "ArgumentError",
    "ExperimentDirectoryError",
    "LockError",
    "DispatchError",
    "CheckpointError",
]


class SpeedrunError(Exception):
    """Base class of every error speedrun raises on purpose."""


class ConfigError(SpeedrunError, ValueError):
    """A configuration file or value is malformed, missing or refused."""


class ArgumentError(SpeedrunError, ValueError):
    """The command line is malformed (a flag without a value, an unknown form)."""


class ExperimentDirectoryError(SpeedrunError, OSError):
    """An experiment directory is missing, not a speedrun directory, or unsafe to touch."""


class LockError(ExperimentDirectoryError):
    """Another live process holds the experiment directory's writer lock."""


class DispatchError(SpeedrunError, AttributeError):
    """The method to dispatch is unknown or not callable."""


class CheckpointError(SpeedrunError, OSError):
    """A checkpoint cannot be saved, found or loaded."""
