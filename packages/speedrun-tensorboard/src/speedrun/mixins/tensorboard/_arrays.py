"""Converting what users log (torch tensors, NumPy arrays, numbers) into what TensorBoard stores.

Images go through :func:`speedrun.ext.to_image_array`, the engine every mixin shares.

NumPy is imported inside the functions; torch is never imported here: a tensor is recognised by
its methods (``detach``/``numel``), so logging plain numbers or arrays never pulls torch in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["as_float", "to_numpy"]


def _is_tensor(value: Any) -> bool:
    return callable(getattr(value, "detach", None)) and callable(getattr(value, "numel", None))


def as_float(value: Any, tag: str) -> float:
    """``value`` as a Python float: numbers, 1-element tensors and arrays, NumPy scalars.

    Raises
    ------
    TypeError
        For strings, containers and tensors/arrays with more than one element.
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"log_scalar({tag!r}) expects a number, got the {type(value).__name__} {value!r}; "
            f"convert it with float(...) or log it with log_text"
        )
    if _is_tensor(value):
        if value.numel() != 1:
            raise TypeError(
                f"log_scalar({tag!r}) expects a single number, got a tensor of shape "
                f"{tuple(value.shape)}; log a reduction (loss.mean()) or use log_histogram"
            )
        return float(value.detach().reshape(()).item())
    size = getattr(value, "size", None)
    if isinstance(size, int) and callable(getattr(value, "item", None)):  # NumPy array/scalar
        if size != 1:
            raise TypeError(
                f"log_scalar({tag!r}) expects a single number, got an array of shape "
                f"{getattr(value, 'shape', '?')}; log a reduction (array.mean()) or use "
                f"log_histogram"
            )
        item = value.reshape(()).item() if hasattr(value, "reshape") else value.item()
        return float(item)
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"log_scalar({tag!r}) expects a number (int, float, NumPy scalar, 1-element tensor "
            f"or array), got {type(value).__name__} {value!r}"
        ) from error


def to_numpy(value: Any, what: str) -> np.ndarray:
    """A NumPy array from a tensor (detached, on the CPU, half precisions widened) or array-like."""
    import numpy as np

    if _is_tensor(value):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.element_size() < 4:  # float16, bfloat16
            tensor = tensor.float()
        converted: np.ndarray = tensor.numpy()
        return converted
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} expects a tensor or array, got {type(value).__name__}") from error
