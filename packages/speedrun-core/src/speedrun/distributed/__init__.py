"""Multi-process runs (torchrun, SLURM): ranks and the main process, per-rank random state,
the set-up barrier between rank 0 and the others (plain data in, plain data out), and
preemption signals (SIGTERM/SIGUSR1 -> checkpoint -> exit 75) agreed across ranks.

Internal to speedrun-core: import the public API from ``speedrun`` and ``speedrun.ext``.
"""
