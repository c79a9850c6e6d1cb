"""The experiment: ``BaseExperiment`` and the base classes it is built from, each of which
initialises the attributes it uses — ``ExperimentState`` (``_state``: directory, counters,
config, cache), ``Checkpointing`` (``_persistence``: saves, loads, preemption), and
``CommandLineSetup`` (``_setup``: ``auto_setup()`` from a plain ``SetupRequest``); dispatch and
hooks (``_dispatch``); what a run reports on stderr (``_report``); the run record
(``_runinfo`` writes ``Configurations/run.json``, ``_runstatus`` reads it); provenance (git
state, versions). Only these classes change an experiment's state.

Internal to speedrun-core: import the public API from ``speedrun`` and ``speedrun.ext``.
"""
