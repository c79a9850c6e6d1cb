"""One tag scope per experiment, shared by every mixin that names things by tags.

TensorBoard scalars and images, Inferno's configuration text, Firelight grids, ``print_image``
and ``save_figure`` all prefix their tags with the same scope: the state lives in one
attribute, :data:`TAGSCOPE_ATTRIBUTE`, whatever the order of the experiment's base classes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, ClassVar  # ClassVar: typing.get_type_hints resolves it

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["TAGSCOPE_ATTRIBUTE", "TagScopeMixin"]

#: The one attribute that holds the current scope (never checkpointed).
TAGSCOPE_ATTRIBUTE = "_speedrun_tagscope"


class TagScopeMixin:
    """``tagscope``, ``set_tagscope`` and ``get_full_tag``, owned once for all mixins.

    Every speedrun mixin that tags things inherits this class, so in
    ``class E(InfernoMixin, TensorboardMixin, BaseExperiment)`` both mixins see the same scope::

        with experiment.set_tagscope("train"):
            experiment.log_scalar("loss", 1.0)    # tag 'train/loss'
        experiment.log_scalar("loss", 2.0)        # tag 'loss'

    Scopes nest (``train`` inside ``model`` gives ``model/train/<tag>``); the previous scope is
    restored when the ``with`` block ends, also when it raises. The scope is not saved in
    checkpoints: a resumed run starts outside every scope.
    """

    NOT_CHECKPOINTED: ClassVar[frozenset[str]] = frozenset({TAGSCOPE_ATTRIBUTE})

    _speedrun_tagscope: str = ""

    @property
    def tagscope(self) -> str:
        """The current scope: ``''`` outside every ``set_tagscope`` block, else e.g. ``'train'``."""
        return self._speedrun_tagscope

    @contextlib.contextmanager
    def set_tagscope(self, name: str) -> Iterator[None]:
        """Prefix every tag written inside the ``with`` block with ``name/``.

        ``name`` keeps the original speedrun's parameter name (``set_tagscope(name='train')``).

        Raises
        ------
        TypeError
            ``name`` is not a string.
        """
        if not isinstance(name, str):
            raise TypeError(
                f"set_tagscope expects a string such as 'train', got {type(name).__name__} "
                f"{name!r}. Fix: with experiment.set_tagscope('train'): ..."
            )
        previous = self._speedrun_tagscope
        scope = name.strip("/")
        self._speedrun_tagscope = f"{previous}/{scope}" if previous and scope else previous or scope
        try:
            yield
        finally:
            self._speedrun_tagscope = previous

    def get_full_tag(self, tag: str) -> str:
        """``tag`` prefixed with the current scope: ``'train/loss'`` for ``'loss'`` in ``train``."""
        scope = self._speedrun_tagscope
        return f"{scope}/{tag}" if scope else tag
