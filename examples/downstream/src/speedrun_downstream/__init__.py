"""An example downstream project: a speedrun experiment logging to TensorBoard."""

__version__ = "0.1.0"
