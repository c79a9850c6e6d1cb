"""Declared config keys: what an experiment class or mixin reads from the config.

A class lists the keys it reads in ``CONFIG_KEYS`` (a sequence of :class:`ConfigKey`); speedrun
collects them over the class's MRO (see :func:`speedrun.experiment._contract.declared_keys`),
validates the run's values at set-up, answers ``config_value(path)`` with the declared default,
and shows them in ``speedrun mixins --keys``, in ``--config.<TAB>`` completion and in each
mixin's README ("Config keys" table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["ConfigKey"]

_NUMBER_KINDS = {"int": (int,), "float": (int, float), "number": (int, float)}


class ConfigKey:
    """One config key: its slash path, default, accepted kinds, and one line of documentation.

    Parameters
    ----------
    path
        ``"tensorboard/flush_secs"``: slash-separated, as ``experiment.get`` takes it.
    default
        The value used when the config does not set the key.
    doc
        One sentence for the README's "Config keys" table and ``speedrun mixins --keys``.
    kinds
        The accepted Python types of a set value (``(int,)``, ``(str, type(None))``); ``None``
        accepts anything. ``bool`` is never accepted where only ``int`` or ``float`` is.
    check
        Optional extra check: called with the value, returns an error text (what was expected)
        when it is wrong, else ``None``.
    """

    __slots__ = ("check", "default", "doc", "kinds", "path")

    def __init__(
        self,
        path: str,
        default: Any = None,
        doc: str = "",
        *,
        kinds: tuple[type, ...] | None = None,
        check: Callable[[Any], str | None] | None = None,
    ) -> None:
        if not path or path.startswith("/") or path.endswith("/") or "//" in path:
            raise ValueError(f"Expected a slash path such as 'training/lr', got {path!r}.")
        self.path = path
        self.default = default
        self.doc = doc
        self.kinds = kinds
        self.check = check

    def __repr__(self) -> str:
        return f"ConfigKey({self.path!r}, default={self.default!r})"

    @property
    def kind_names(self) -> str:
        """The accepted kinds as text (``"int or null"``), or ``"any"``."""
        if self.kinds is None:
            return "any"
        names = ["null" if kind is type(None) else kind.__name__ for kind in self.kinds]
        return " or ".join(names)

    def validate(self, value: Any, *, owner: str = "") -> Any:
        """Return ``value`` when it is acceptable, else raise a :class:`~speedrun.ConfigError`
        naming the key, what was expected, what was received and the fix."""
        problem: str | None = None
        if self.kinds is not None:
            bad_bool = isinstance(value, bool) and bool not in self.kinds
            if bad_bool or not isinstance(value, self.kinds):
                problem = f"a value of type {self.kind_names}"
        if problem is None and self.check is not None:
            problem = self.check(value)
        if problem is None:
            return value
        reader = f" (read by {owner})" if owner else ""
        raise ConfigError(
            f"config '{self.path}'{reader} expects {problem}, got {type(value).__name__} "
            f"{value!r}. Fix it in train_config.yml or pass --config.{self.path.replace('/', '.')} "
            f"VALUE (default: {self.default!r})."
        )
