"""Checkpoints: the file names and envelope format, discovery of the latest valid checkpoint,
retention, the serializers (torch, dill, pickle), atomic durable saves and loads, asynchronous
saves (a snapshot in the caller, the write in a background thread), and the random state that
exact resume needs.

Internal to speedrun-core: import the public API from ``speedrun`` and ``speedrun.ext``.
"""
