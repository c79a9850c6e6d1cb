"""The experiment directory on disk: its layout (``Configurations/``, ``Logs/``, ``Weights/``,
``Plots/``) and identification marker, the single-writer lock, the safe purge, atomic and
durable file writes, and the rule that turns a tag into a file path.

Internal to speedrun-core: import the public API from ``speedrun`` and ``speedrun.ext``.
"""
