"""The configuration: the nested mapping with slash paths (``Config``), speedrun's safe
YAML loader and dumper, macro files, and the command line (``--config.a.b VALUE`` overrides
and flags parsed into plain values). Depends on nothing else in speedrun but its errors.

Internal to speedrun-core: import the public API from ``speedrun`` and ``speedrun.ext``.
"""
