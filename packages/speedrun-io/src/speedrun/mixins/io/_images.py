"""Arrays from tensors (``IOMixin.to_array``).

Images are converted and written by speedrun-core's one engine (``speedrun.ext.to_image_array``
and ``write_png``), shared with ``log_image`` and Firelight. NumPy and torch are imported inside
the functions, never at module import.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np
    from numpy import ndarray

__all__ = ["to_array"]


def _numpy() -> Any:
    from speedrun.ext import require

    return require(
        "numpy",
        feature="speedrun-io (arrays and images)",
        install="pip install speedrun-io (or pip install numpy)",
    )


def to_array(value: Any) -> np.ndarray:
    """Return ``value`` as a NumPy array.

    Parameters
    ----------
    value
        A torch tensor (detached and moved to the CPU; bfloat16 becomes float32, which NumPy
        can hold) or a NumPy array (returned as is).

    Raises
    ------
    ValueError
        For any other type.
    """
    np = _numpy()
    torch = sys.modules.get("torch")  # a tensor implies torch is imported already
    if torch is not None and torch.is_tensor(value):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return cast("ndarray", tensor.numpy())
    if isinstance(value, np.ndarray):
        return cast("ndarray", value)
    raise ValueError(
        f"Expected a torch tensor or a NumPy array, got {type(value).__module__}."
        f"{type(value).__qualname__}. Convert it first, e.g. numpy.asarray(value)."
    )
