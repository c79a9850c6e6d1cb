"""speedrun-core's version: the one source (hatch reads it at build time; ``speedrun.__version__``
and ``speedrun --version`` show it). ``python scripts/release.py bump core PART`` changes it."""

__version__ = "0.2.0"
