"""The experiment command line.

``python train.py DIR [--flag VALUE | --flag=VALUE | --flag] ...``
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from .._errors import ArgumentError

__all__ = [
    "Arguments",
    "BOOLEAN_FLAGS",
    "SPEEDRUN_FLAGS",
    "SetupRequest",
    "VALUE_FLAGS",
    "parse_arguments",
    "parse_literal",
    "parse_setup",
    "suggest_flag",
]

#: Flags that may stand alone (``--purge``) or take a boolean (``--purge True``).
BOOLEAN_FLAGS = frozenset({"purge", "resume", "strict", "any-class", "trust-checkpoint"})
#: Flags that always need a value; so does every ``--config.*`` flag.
VALUE_FLAGS = frozenset({"inherit", "macro", "dispatch"})
#: Every flag speedrun's set-up reads (``--config.*`` aside).
SPEEDRUN_FLAGS = BOOLEAN_FLAGS | VALUE_FLAGS
_BOOLEAN_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def parse_literal(text: str) -> Any:
    """``text`` as a Python literal (``3``, ``0.1``, ``[1, 2]``, ``{'a': 1}``), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


class Arguments:
    """A parsed command line.

    ``flags`` maps flag names (without ``--``) to their raw string value, or to ``True`` for a
    bare flag; ``overrides`` keeps every ``--config.a.b VALUE`` as ``('a/b', raw)`` in order.
    """

    __slots__ = ("argv", "positionals", "flags", "overrides")

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv: list[str] = list(argv)
        self.positionals: list[str] = []
        self.flags: dict[str, str | bool] = {}
        self.overrides: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return (
            f"Arguments(positionals={self.positionals!r}, flags={self.flags!r}, "
            f"overrides={self.overrides!r})"
        )

    def get(self, name: str, default: Any = None) -> Any:
        """``--name``'s value parsed as a Python literal, ``True`` if bare, else ``default``."""
        if name not in self.flags:
            return default
        raw = self.flags[name]
        if raw is True:
            return True
        assert isinstance(raw, str)
        if name in BOOLEAN_FLAGS:
            return _BOOLEAN_WORDS[raw.lower()]
        return parse_literal(raw)

    def parsed_overrides(self) -> list[tuple[str, Any]]:
        """``--config`` overrides as ``(slash_path, value)`` with values parsed as literals.

        Raises
        ------
        ArgumentError
            A value the run's ``train_config.yml`` could not hold and read back (a tuple as a
            mapping key, a set, text that is not valid UTF-8).
        """
        parsed = []
        for path, raw in self.overrides:
            value = parse_literal(raw)
            problem = _not_round_trippable(value)
            if problem is None and not _is_utf8(path):
                problem = "the key is not valid UTF-8 text"
            if problem is not None:
                from .._errors import ArgumentError

                shown = raw if len(raw) <= 80 else raw[:77] + "..."
                raise ArgumentError(
                    f"--config.{path.replace('/', '.')} {shown!r}: {problem}, so the run's "
                    "train_config.yml could not be read back and the run could never be "
                    "resumed. Use strings, numbers, booleans, None, lists and dicts with "
                    "string or number keys."
                )
            parsed.append((path, value))
        return parsed


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of the command line that are not UTF-8
        return False
    return True


def _not_round_trippable(value: Any, depth: int = 0) -> str | None:
    """Why YAML could not write ``value`` and read it back unchanged, or None."""
    if depth > 100:
        return "it is nested too deeply"
    if isinstance(value, str):
        return None if _is_utf8(value) else "it is not valid UTF-8 text"
    if value is None or isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            problem = _not_round_trippable(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, bool, int, float))):
                return (
                    f"the key {key!r} is a {type(key).__name__}, which YAML reads back differently"
                )
            problem = _not_round_trippable(key, depth + 1) or _not_round_trippable(item, depth + 1)
            if problem:
                return problem
        return None
    return f"it is a {type(value).__name__}, which YAML cannot hold"


def _needs_value(name: str) -> bool:
    return name in VALUE_FLAGS or name.startswith("config.")


def parse_arguments(argv: Sequence[str]) -> Arguments:
    """Parse ``argv`` (``sys.argv``, program name first).

    The first token that is not a flag or a flag's value is the experiment directory. A bare
    boolean flag never swallows the directory: ``--purge experiments/RUN-0`` is a bare
    ``--purge`` followed by the directory.
    """
    args = Arguments(argv)
    tokens = list(argv[1:])
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            args.positionals.extend(tokens[index:])
            break
        if not token.startswith("--") or token == "--":
            args.positionals.append(token)
            continue
        name, has_equals, value = token[2:].partition("=")
        if not name:
            raise ArgumentError(f"expected a flag name after '--', got {token!r}")
        following = tokens[index] if index < len(tokens) else None
        if has_equals:
            raw: str | bool = value
        elif name in BOOLEAN_FLAGS:
            if following is not None and following.lower() in _BOOLEAN_WORDS:
                raw = following
                index += 1
            else:
                raw = True
        elif following is not None and not following.startswith("--"):
            raw = following
            index += 1
        elif _needs_value(name):
            example = "experiments/RUN-0" if name == "inherit" else "VALUE"
            raise ArgumentError(
                f"--{name} expects a value (e.g. --{name} {example}), but got "
                f"{'nothing' if following is None else repr(following)} after it."
            )
        else:
            raw = True
        if name in BOOLEAN_FLAGS and isinstance(raw, str) and raw.lower() not in _BOOLEAN_WORDS:
            raise ArgumentError(f"--{name} takes True or False (or nothing), got {raw!r}.")
        if name.startswith("config."):
            path = name[len("config.") :].replace(".", "/")
            if not path or "//" in path or path.endswith("/"):
                raise ArgumentError(f"expected --config.<key>[.<subkey>...] VALUE, got {token!r}.")
            if raw is True:
                raise ArgumentError(f"--{name} expects a value, got nothing.")
            args.overrides.append((path, str(raw)))
        args.flags[name] = raw
    return args


# ------------------------------------------------------------------------------------------------
# the set-up a command line asks for


class SetupRequest(NamedTuple):
    """What a command line asks ``auto_setup()`` to do, as plain, immutable data (see
    :func:`parse_setup`). A named tuple rather than a dataclass: ``dataclasses`` imports
    ``inspect``, which would cost every run ~40 ms of start-up.

    ``overrides`` holds every ``--config.a.b VALUE`` as ``('a/b', value)`` in order, values
    parsed as Python literals; ``unknown_flags`` the flags that are neither speedrun's nor
    declared by the experiment class (reported once, see ``BaseExperiment.COMMAND_LINE_FLAGS``).
    """

    argv: tuple[str, ...]
    directory: str | None
    inherit: str | None = None
    macros: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    resume: bool = False
    purge: bool = False
    strict: bool = False
    any_class: bool = False
    dispatch: str | None = None
    unknown_flags: tuple[str, ...] = ()

    @property
    def override_paths(self) -> tuple[str, ...]:
        """The slash paths the ``--config`` overrides set, in order, without repeats."""
        return tuple(dict.fromkeys(path for path, _ in self.overrides))


def _distance(a: str, b: str) -> int:
    """The optimal-string-alignment distance: insertions, deletions, substitutions and swaps
    of two neighbours (``resmue`` is one edit from ``resume``)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _close(typed: str, known: str) -> bool:
    typed = typed.lower().replace("_", "-")
    return typed == known or _distance(typed, known) <= 1


def suggest_flag(name: str) -> str | None:
    """The speedrun flag ``--name`` is probably a typo of (``conifg.a.b`` -> ``config.a.b``,
    ``resmue`` -> ``resume``), or None. One edit (a swap of neighbours counts as one) away, or
    the same flag in other letter case or with ``_`` for ``-``."""
    if name in SPEEDRUN_FLAGS or name.startswith("config."):
        return None
    head, dot, rest = name.partition(".")
    if dot:
        if _close(head, "config"):
            return f"config.{rest}" if rest else "config.<key>"
        return None
    if _close(name, "config"):
        return "config.<key>"
    for known in sorted(SPEEDRUN_FLAGS):
        if _close(name, known):
            return known
    return None


def _declared(name: str, declared: Collection[str]) -> bool:
    return any(
        name == entry or (entry.endswith(".") and name.startswith(entry)) for entry in declared
    )


def parse_setup(args: Arguments, declared: Collection[str] = ()) -> SetupRequest:
    """The set-up ``args`` asks for, checked: a plain :class:`SetupRequest`.

    ``declared`` names the flags the experiment reads itself (an entry ending in ``.`` declares
    every flag under it, e.g. ``"wait."``); they are neither typos nor unknown.

    Raises
    ------
    ArgumentError
        For a flag one edit away from one of speedrun's (``--resmue``, ``--conifg.a 1``: the
        message says which was meant), and for combinations that make no sense (``--resume``
        with ``--purge`` or ``--inherit``).
    """
    unknown = []
    for name in args.flags:
        if name in SPEEDRUN_FLAGS or name.startswith("config.") or _declared(name, declared):
            continue
        suggestion = suggest_flag(name)
        if suggestion is not None:
            raise ArgumentError(
                f"unknown flag --{name}: did you mean --{suggestion}? (speedrun's flags: "
                f"{', '.join('--' + flag for flag in sorted(SPEEDRUN_FLAGS))}, --config.<key>; "
                "a flag of your own must be declared in COMMAND_LINE_FLAGS of the experiment "
                "class)"
            )
        unknown.append(name)
    resume = bool(args.get("resume", False))
    purge = bool(args.get("purge", False))
    raw_inherit, raw_macro, raw_dispatch = (
        args.flags.get(name) for name in ("inherit", "macro", "dispatch")
    )
    inherit = raw_inherit if isinstance(raw_inherit, str) else None
    if resume and purge:
        raise ArgumentError("--resume continues a run and --purge deletes it: pass one")
    if resume and inherit is not None:
        raise ArgumentError("--resume continues the directory's own config; drop --inherit")
    return SetupRequest(
        argv=tuple(args.argv),
        directory=args.positionals[0] if args.positionals else None,
        inherit=inherit,
        macros=raw_macro if isinstance(raw_macro, str) else None,
        overrides=tuple(args.parsed_overrides()),
        resume=resume,
        purge=purge,
        strict=bool(args.get("strict", False)),
        any_class=bool(args.get("any-class", False)),
        dispatch=raw_dispatch if isinstance(raw_dispatch, str) else None,
        unknown_flags=tuple(unknown),
    )
