"""Capture and restore the global random number generators, for exact resumes.

:func:`capture_random_state` returns a picklable dict holding the state of

- Python's :mod:`random` module,
- NumPy's global generator (``numpy.random.seed``/``numpy.random.rand`` and friends),
- torch's CPU generator, and each CUDA device's generator when CUDA is initialized.

Which libraries are captured: those already imported by the process. A library that was never
imported has never drawn a random number, so its state is whatever a fresh import gives it in
the resumed process as well; importing torch (seconds) or numpy just to find that out would only
cost time. For the same reason CUDA generators are captured only once CUDA is initialized
(querying them would otherwise create a CUDA context on every visible device).

Generators that the experiment owns (``numpy.random.Generator``, ``torch.Generator``,
``random.Random`` instances stored as attributes) are part of its state and are checkpointed
with it; they need nothing from this module.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from .._errors import CheckpointError

if TYPE_CHECKING:
    from typing import Any


__all__ = [
    "RANDOM_STATE_FORMAT",
    "RANK_STATE_FORMAT",
    "capture_random_state",
    "read_rank_state",
    "restore_random_state",
]

RANDOM_STATE_FORMAT = "speedrun-random-state"
_VERSION = 1
_KNOWN = {"format", "version", "python", "numpy", "torch", "torch_cuda"}


def capture_random_state() -> dict[str, Any]:
    """Return the state of every global random number generator in use, as a picklable dict.

    Keys: ``"python"`` always; ``"numpy"`` when numpy is imported; ``"torch"`` when torch is
    imported; ``"torch_cuda"`` (one state per device) when CUDA is initialized. Capturing does
    not advance any generator.
    """
    import random  # here, not at import: start-up is benchmarked and rarely checkpoints

    state: dict[str, Any] = {
        "format": RANDOM_STATE_FORMAT,
        "version": _VERSION,
        "python": random.getstate(),
    }
    numpy = sys.modules.get("numpy")
    if numpy is not None and hasattr(numpy, "random"):
        state["numpy"] = numpy.random.get_state(legacy=False)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_rng_state"):
        state["torch"] = torch.get_rng_state()
        cuda = getattr(torch, "cuda", None)
        if cuda is not None and cuda.is_available() and cuda.is_initialized():
            state["torch_cuda"] = cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any]) -> None:
    """Put the global random number generators back to a state from :func:`capture_random_state`.

    Imports numpy or torch when the state holds theirs (they were in use when it was captured).
    A generator whose library is not installed now, or CUDA states on a machine with fewer or
    no GPUs, are restored as far as possible and the rest is reported with a warning.

    Raises
    ------
    CheckpointError
        When ``state`` is not a random state captured by :func:`capture_random_state`.
    """
    if not isinstance(state, dict) or state.get("format") != RANDOM_STATE_FORMAT:
        raise CheckpointError(
            "Expected a random state from speedrun's capture_random_state() (a dict with "
            f"format={RANDOM_STATE_FORMAT!r}), got {_describe(state)}."
        )
    version = state.get("version")
    if not isinstance(version, int) or version > _VERSION:
        raise CheckpointError(
            f"The random state has version {version!r}; this speedrun reads up to {_VERSION}. "
            "Upgrade speedrun-core to restore it."
        )
    unknown = sorted(set(state) - _KNOWN)
    if unknown:
        warnings.warn(
            f"Ignoring unknown entries {unknown} of the random state "
            "(written by a newer speedrun?).",
            stacklevel=2,
        )
    if "python" in state:
        import random

        try:
            random.setstate(state["python"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"The random state's 'python' entry is malformed: {exc}") from exc
    if "numpy" in state:
        _restore_numpy(state["numpy"])
    if "torch" in state or "torch_cuda" in state:
        _restore_torch(state.get("torch"), state.get("torch_cuda"))


def _restore_numpy(numpy_state: Any) -> None:
    try:
        import numpy
    except ImportError:
        warnings.warn(
            "The random state holds NumPy's generator but numpy is not installed; skipping it "
            "(pip install numpy to restore it).",
            stacklevel=3,
        )
        return
    try:
        numpy.random.set_state(numpy_state)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"The random state's 'numpy' entry is malformed: {exc}") from exc


def _restore_torch(cpu_state: Any, cuda_states: Any) -> None:
    try:
        import torch
    except ImportError:
        warnings.warn(
            "The random state holds torch's generators but torch is not installed; skipping "
            "them (pip install torch to restore them).",
            stacklevel=3,
        )
        return
    if cpu_state is not None:
        try:
            torch.set_rng_state(cpu_state)
        except (TypeError, RuntimeError) as exc:
            raise CheckpointError(f"The random state's 'torch' entry is malformed: {exc}") from exc
    if cuda_states is None:
        return
    if not isinstance(cuda_states, (list, tuple)):
        raise CheckpointError(
            f"The random state's 'torch_cuda' entry should be a list of per-device states, got "
            f"{_describe(cuda_states)}."
        )
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available < len(cuda_states):
        warnings.warn(
            f"The random state holds {len(cuda_states)} CUDA generator(s) but this machine has "
            f"{available} CUDA device(s); restoring the first {min(available, len(cuda_states))}. "
            "Random draws on the missing devices will not repeat the original run.",
            stacklevel=3,
        )
    for index, device_state in enumerate(cuda_states[:available]):
        # Queued until CUDA initializes, so restoring never creates a context by itself.
        torch.cuda.set_rng_state(device_state, device=index)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))[:8]}"
    return type(value).__name__


RANK_STATE_FORMAT = "speedrun-rank-random-state"
"""The ``format`` of a file holding one process's random state beside a checkpoint."""


def read_rank_state(path: str | os.PathLike[str], step: int) -> dict[str, Any]:
    """The random state saved in ``path`` for ``step`` (a rank's side file of a checkpoint).

    Raises
    ------
    FileNotFoundError
        There is no such file.
    ValueError
        The file is not a rank random-state file for ``step``.
    """
    import pickle

    with open(path, "rb") as handle:
        payload = pickle.load(handle)
    if (
        not isinstance(payload, dict)
        or payload.get("format") != RANK_STATE_FORMAT
        or payload.get("step") != step
        or not isinstance(payload.get("state"), dict)
    ):
        raise ValueError("not a speedrun rank random-state file for this step")
    state: dict[str, Any] = payload["state"]
    return state
