"""The ``speedrun`` command (``python -m speedrun``): ``ls``, ``show``, ``diff``, ``mixins``, shell
completion, and the read-only inspection of experiment directories they share.

Internal to speedrun-core: import the public API from ``speedrun`` and ``speedrun.ext``.
"""
