"""Tags and file names given by users, turned into paths that stay inside an experiment folder.

Shared by the mixins that write files named by tags (`Plots/<tag folders>/<name>_step_<step>.png`).
"""

from __future__ import annotations

import os

__all__ = ["relative_parts", "tagged_file"]


def relative_parts(name: str, *, what: str) -> list[str]:
    """Split a slash-separated ``name`` into path components, refusing ways out of the folder.

    Parameters
    ----------
    name
        A tag such as ``"validation/prediction"`` or a file name such as ``"stdout"``.
    what
        What ``name`` is, for the error message (e.g. ``"image tag"``).

    Returns
    -------
    list of str
        The non-empty components of ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a string, is empty, absolute, or contains ``.``/``..`` components.
    """
    if not isinstance(name, str):
        raise ValueError(
            f"Expected the {what} to be a string like 'train/loss', got {type(name).__name__} "
            f"{name!r}. Pass a string."
        )
    normalized = name.replace("\\", "/")
    parts = [part for part in normalized.split("/") if part]
    if not parts or normalized.startswith("/") or os.path.isabs(name):
        raise ValueError(
            f"Expected the {what} to be a relative, non-empty name like 'train/loss', got "
            f"{name!r}. Remove leading slashes and give it a name."
        )
    if any(part in (".", "..") for part in parts):
        raise ValueError(
            f"Expected the {what} to stay inside the experiment folder, got {name!r} which "
            f"contains '.' or '..'. Use plain folder names such as 'validation/images'."
        )
    return parts


def tagged_file(base: str, tag: str, *, suffix: str, what: str) -> str:
    """Return ``base/<tag folders>/<tag name><suffix>``, creating the folders.

    ``tagged_file("Plots", "val/pred", suffix="_step_3.png", what="image tag")`` gives
    ``Plots/val/pred_step_3.png`` and makes sure ``Plots/val`` exists.
    """
    parts = relative_parts(tag, what=what)
    folder = os.path.join(base, *parts[:-1])
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{parts[-1]}{suffix}")
