"""Make inferno-pytorch 0.1.7 import and train on a current stack (SciPy, torch, dill).

inferno-pytorch 0.1.7 (2017) predates SciPy 1.2 and torch 0.4. Each fix here is applied only
when a probe shows the installed inferno (or library around it) needs it, so a fixed inferno
is left alone:

``scipy-misc-toimage``
    ``inferno.trainers`` runs ``from scipy.misc import toimage`` (and its io utilities
    ``imsave``); SciPy removed both in 1.2. When they are missing, speedrun adds its own
    (Pillow-based) implementations to ``scipy.misc`` before inferno is imported.

The fixes of the trainer itself (validation on 0-dim losses, saving when validation and
checkpoint intervals are both set, pickling torch optimizers with dill) live in the trainer
subclass of :mod:`speedrun.mixins.inferno._trainer`, next to their probes.

Nothing here imports torch, numpy or inferno at module import time.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any

from speedrun.ext import require

__all__ = [
    "INFERNO_INSTALL_HINT",
    "applied_fixes",
    "ensure_scipy_misc_toimage",
    "import_inferno_trainers",
    "record_fix",
    "toimage",
    "imsave",
]

INFERNO_INSTALL_HINT = "pip install --no-deps inferno-pytorch==0.1.7"
# inferno-pytorch is installed without its dependencies: speedrun-inferno declares them.
_INSTALL_DEPENDENCIES = "pip install speedrun-inferno"

_APPLIED: dict[str, str] = {}


def record_fix(name: str, reason: str) -> None:
    """Remember that compatibility fix ``name`` is active (see :func:`applied_fixes`)."""
    _APPLIED[name] = reason


def applied_fixes() -> dict[str, str]:
    """The compatibility fixes active in this process, ``{name: why it was needed}``.

    Fixes are decided the first time inferno is imported through speedrun; before that the
    mapping is empty.
    """
    return dict(_APPLIED)


# -- scipy.misc.toimage / imsave ------------------------------------------------------------------
def _bytescale(data: Any, cmin: float | None, cmax: float | None, high: int, low: int) -> Any:
    import numpy as np

    if data.dtype == np.uint8 and cmin is None and cmax is None:
        return data
    if high < low:
        raise ValueError(f"toimage: expected high >= low, got high={high}, low={low}")
    data = data.astype(np.float64)
    cmin = float(np.nanmin(data)) if cmin is None else float(cmin)
    cmax = float(np.nanmax(data)) if cmax is None else float(cmax)
    span = cmax - cmin
    scale = (high - low) / span if span > 0 else 1.0
    scaled = (data - cmin) * scale + low
    return np.clip(np.nan_to_num(scaled, nan=low), low, high).round().astype(np.uint8)


def toimage(
    arr: Any,
    high: int = 255,
    low: int = 0,
    cmin: float | None = None,
    cmax: float | None = None,
    pal: Any = None,
    mode: str | None = None,
    channel_axis: int | None = None,
) -> Any:
    """Turn an array into a ``PIL.Image`` (the contract of SciPy's removed ``toimage``).

    A 2-D array becomes a grey image, an array with an axis of length 3 or 4 an RGB or RGBA
    image. Values are scaled linearly from ``[cmin, cmax]`` (default: the data's range) to
    ``[low, high]`` unless the array is already ``uint8``.

    Parameters
    ----------
    arr : array_like
        ``(H, W)``, ``(H, W, 3|4)`` or ``(3|4, H, W)``.
    high, low : int
        Output range of the byte scaling.
    cmin, cmax : float, optional
        Input range of the byte scaling.
    pal, mode : optional
        ``mode='F'`` or ``'I'`` keeps a 2-D array's values unscaled (32-bit float or int).
        Palettes are not supported.
    channel_axis : int, optional
        Which axis holds the colour channels (found automatically if omitted).
    """
    import numpy as np
    from PIL import Image

    data = np.asarray(arr)
    if pal is not None:
        raise ValueError(
            "toimage: palettes (pal=...) are not supported by speedrun's shim; "
            "convert the image to RGB first"
        )
    if np.iscomplexobj(data):
        raise ValueError("toimage: expected a real-valued array, got a complex one")
    if data.ndim == 2:
        if mode == "F":
            return Image.fromarray(data.astype(np.float32), mode="F")
        if mode == "I":
            return Image.fromarray(data.astype(np.int32), mode="I")
        return Image.fromarray(_bytescale(data, cmin, cmax, high, low), mode="L")
    if data.ndim == 3:
        if channel_axis is None:
            candidates = [axis for axis in (2, 0, 1) if data.shape[axis] in (3, 4)]
            if not candidates:
                raise ValueError(
                    f"toimage: expected a 3-D array with an axis of length 3 or 4, "
                    f"got shape {data.shape}"
                )
            channel_axis = candidates[0]
        data = np.moveaxis(data, channel_axis, -1)
        if data.shape[-1] not in (3, 4):
            raise ValueError(
                f"toimage: the channel axis must have length 3 or 4, got {data.shape[-1]}"
            )
        scaled = np.ascontiguousarray(_bytescale(data, cmin, cmax, high, low))
        return Image.fromarray(scaled, mode="RGB" if scaled.shape[-1] == 3 else "RGBA")
    raise ValueError(f"toimage: expected a 2-D or 3-D array, got shape {data.shape}")


def imsave(name: Any, arr: Any, format: str | None = None) -> None:
    """Save an array as an image file (the contract of SciPy's removed ``imsave``)."""
    toimage(arr).save(name, format=format)


def _quietly_import(name: str) -> types.ModuleType:
    with warnings.catch_warnings():
        # "scipy.misc is deprecated": inferno's import of it is not the user's doing.
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(name)


def ensure_scipy_misc_toimage() -> str:
    """Give ``scipy.misc`` the ``toimage`` and ``imsave`` inferno 0.1.7 imports, if missing.

    Returns
    -------
    str
        ``"present"`` (SciPy still has them: nothing done), ``"added"`` (added to the existing
        ``scipy.misc``) or ``"created"`` (SciPy without a ``scipy.misc`` module: a module
        holding only these two functions was registered as ``scipy.misc``).
    """
    scipy = require(
        "scipy",
        feature="inferno-pytorch 0.1.7 (InfernoMixin)",
        install=f"{_INSTALL_DEPENDENCIES} (or pip install scipy)",
    )
    try:  # a probe, not an error: recent SciPy has no scipy.misc, and the shim stands in
        misc = _quietly_import("scipy.misc")
        created = False
    except ImportError:
        misc = types.ModuleType("scipy.misc", "speedrun's stand-in for the removed scipy.misc")
        created = True
    missing = [name for name in ("toimage", "imsave") if not hasattr(misc, name)]
    if not missing:
        return "present"
    for name in missing:
        setattr(misc, name, {"toimage": toimage, "imsave": imsave}[name])
    if created:
        sys.modules["scipy.misc"] = misc
        scipy.misc = misc  # type: ignore[attr-defined]  # this SciPy has no misc: the shim adds one
        record_fix("scipy-misc-toimage", "this SciPy has no scipy.misc module")
        return "created"
    record_fix("scipy-misc-toimage", f"this SciPy's scipy.misc has no {' or '.join(missing)}")
    return "added"


def import_inferno_trainers() -> types.ModuleType:
    """Import ``inferno.trainers.basic`` after applying the import-time fixes it needs.

    Raises
    ------
    ImportError
        inferno, or a library it imports, is not installed (the message names the command
        that installs it).
    """
    require(
        "inferno",
        feature="InfernoMixin",
        install=f"{INFERNO_INSTALL_HINT} (--no-deps: inferno-pytorch pins pip==8.1.2)",
    )
    ensure_scipy_misc_toimage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # inferno's imports, not the user's
        return require(
            "inferno.trainers.basic",
            feature="InfernoMixin",
            install=f"{_INSTALL_DEPENDENCIES} (it brings the libraries inferno imports)",
        )
