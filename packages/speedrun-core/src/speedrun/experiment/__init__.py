"""The experiment: ``BaseExperiment``, which composes the layers below and is the only class
that changes an experiment's state; dispatch and hooks; the command-line set-up; the run
record (``Configurations/run.json``); provenance (git state, versions).

Internal to speedrun-core: import the public API from ``speedrun`` and ``speedrun.ext``.
"""
