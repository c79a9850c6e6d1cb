"""Reading experiment directories for the ``speedrun`` command and shell completion.

Configurations are read without numpy or torch (arrays stay :class:`Tagged` data); directories
are found, summarised (one ``speedrun ls`` row) and compared (``diff_configs``), and a run's
``--inherit`` lineage is followed, all without loading a checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from .._errors import ExperimentDirectoryError, SpeedrunError
from ..experiment._runinfo import (
    last_activity,
    latest_valid_checkpoint,
    resolve_status,
)
from ..experiment._runinfo import read_run_record as _read_run_record

__all__ = [
    "CONFIG_FILE",
    "PATCH_LIMIT",
    "clean_text",
    "Problem",
    "Run",
    "Tagged",
    "diff_configs",
    "display_path",
    "find_experiments",
    "git_of",
    "lineage",
    "load_config",
    "one_line",
    "summarize",
]

CONFIG_FILE = os.path.join("Configurations", "train_config.yml")
PATCH_LIMIT = 64 * 2**20
"""The most bytes of a run's git patch that ``speedrun diff`` reads."""
_LATEST_TIME = 32503680000.0  # year 3000: later "times" in a run record are not times

# C0 controls but tab and newline, DEL, and C1 controls (ESC [ and CSI start terminal commands).
_CONTROL = {
    code: None for code in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))
}


def clean_text(text: str) -> str:
    """``text`` without terminal control characters (a run's files could move the cursor,
    retitle the terminal or hide lines); tabs and newlines stay."""
    return text.translate(_CONTROL)


def _odd_time(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return not 0 <= value <= _LATEST_TIME  # NaN fails both comparisons


def _odd_record(record: dict[str, Any]) -> str | None:
    """What in a run record has a type or value speedrun never writes, or None."""
    expected = {
        "command": dict,
        "inherit": dict,
        "git": dict,
        "history": list,
        "macros": list,
        "speedrun": dict,
        "config_keys": list,
    }
    for key, kind in expected.items():
        if record.get(key) is not None and not isinstance(record[key], kind):
            return f"{key!r} is {type(record[key]).__name__}, expected {kind.__name__}"
    attempts = [record, *[entry for entry in record.get("history") or []]]
    for attempt in attempts:
        if not isinstance(attempt, dict):
            return f"a history entry is {type(attempt).__name__}, expected dict"
        for key in ("started_at", "ended_at", "last_activity_at"):
            if _odd_time(attempt.get(key)):
                return f"{key!r} is {_short_repr(attempt.get(key))}, expected a time in seconds"
    step = record.get("final_step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        return f"'final_step' is {_short_repr(step)}, expected an integer"
    command = record.get("command") or {}
    for key in ("argv", "orig_argv"):
        if command.get(key) is not None and not isinstance(command[key], list):
            return f"'command.{key}' is {type(command[key]).__name__}, expected a list"
    if record.get("macros") is not None and not all(isinstance(m, str) for m in record["macros"]):
        return "'macros' holds values that are not paths"
    inherit = record.get("inherit") or {}
    if inherit.get("path") is not None and not isinstance(inherit["path"], str):
        return "'inherit.path' is not a path"
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_run_record(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run record of ``directory`` for inspection: only values speedrun itself writes.

    Raises
    ------
    ExperimentDirectoryError
        The record cannot be read, is not a run record, nests too deeply, or holds odd values
        (a string as a time, ``1e300``, ``NaN``, a string as the command).
    """
    try:
        record = _read_run_record(directory)
    except RecursionError:
        raise ExperimentDirectoryError(
            f"{os.path.join(os.fspath(directory), 'Configurations', 'run.json')} is nested too "
            "deeply to be a speedrun run record; restore it or delete it"
        ) from None
    if record is None:
        return None
    odd = _odd_record(record)
    if odd is not None:
        raise ExperimentDirectoryError(
            f"{os.path.join(os.fspath(directory), 'Configurations', 'run.json')} holds odd "
            f"values ({odd}); restore it or delete it (the run's configuration and checkpoints "
            "do not depend on it)"
        )
    return record


_IGNORED_FLAGS = frozenset(
    {"purge", "resume", "trust-checkpoint"}
)  # how a directory was handled, not what ran


# ------------------------------------------------------------------------------------------------
# configurations, read for inspection


class Tagged(tuple[Any, ...]):
    """A ``!NumpyArray``/``!TorchTensor`` value read without numpy or torch: ``(tag, data)``."""

    __slots__ = ()

    def __new__(cls, tag: str, data: Any) -> Tagged:
        return super().__new__(cls, (tag, data))

    @property
    def tag(self) -> str:
        """``"!NumpyArray"`` or ``"!TorchTensor"``."""
        return str(self[0])

    @property
    def data(self) -> Any:
        """The (nested) list of numbers, or the scalar of a 0-d array."""
        return self[1]

    def __repr__(self) -> str:
        return f"{self.tag} {self.data!r}"


_inspect_loader: type | None = None


def _loader() -> type:
    """speedrun's loader, except that arrays and tensors stay :class:`Tagged` data."""
    global _inspect_loader
    if _inspect_loader is None:
        from ..config._yaml import SpeedrunLoader, _construct_array_data

        class InspectLoader(SpeedrunLoader):
            pass

        for tag in ("!NumpyArray", "!TorchTensor"):

            def construct(loader: Any, node: Any, tag: str = tag) -> Tagged:
                return Tagged(tag, _construct_array_data(loader, node, tag))

            InspectLoader.add_constructor(tag, construct)
        _inspect_loader = InspectLoader
    return _inspect_loader


def load_config(path: str | os.PathLike[str]) -> dict[Any, Any]:
    """Read a configuration file for inspection (``speedrun diff``, ``show``, completion).

    Safe like every speedrun load; ``!NumpyArray`` and ``!TorchTensor`` values come back as
    :class:`Tagged` lists, so neither numpy nor torch is needed.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, malformed, or its top level is not a mapping.
    """
    from .._errors import ConfigError
    from ..config._yaml import _load

    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"configuration file {name} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"expected a YAML file at {name}, found a folder") from None
    except OSError as error:
        raise ConfigError(
            f"cannot read configuration file {name}: "
            f"{error.strerror or error}; check its permissions"
        ) from None
    data = _load(text, name, _loader())
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping at the top of {name}, got "
            f"{type(data).__name__}; write the configuration as 'key: value' "
            "lines starting in the first column"
        )
    return data


# ------------------------------------------------------------------------------------------------
# experiment directories


class Problem(Exception):
    """A per-item problem reported as one line (the command goes on with the other items)."""


def one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def display_path(path: str) -> str:
    """``path`` relative to the working folder when it is below it, else absolute."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except ValueError:
        return absolute
    return absolute if relative.startswith(".." + os.sep) or relative == ".." else relative


def _is_experiment(path: str) -> bool:
    from ..directory._layout import is_run_directory

    return is_run_directory(path)


def _require_experiment(path: str) -> str:
    if not os.path.exists(path):
        raise ExperimentDirectoryError(f"{path}: no such experiment directory; check the path")
    if not os.path.isdir(path):
        raise ExperimentDirectoryError(
            f"{path} is a file, not an experiment directory; pass the run's folder "
            "(or a .yml configuration file where the command accepts one)"
        )
    if not _is_experiment(path):
        raise ExperimentDirectoryError(
            f"{path} is not a speedrun experiment directory: expected a folder with a "
            f".speedrun marker or {CONFIG_FILE}; pass a run's folder, e.g. experiments/RUN-0"
        )
    return path


def find_experiments(
    roots: Sequence[str], depth: int = 3
) -> tuple[list[str], list[str], list[str]]:
    """Experiment directories at or below ``roots`` (``depth`` folder levels deep).

    Returns ``(directories, problems, notes)``: problems are roots that are missing or
    unreadable, notes roots without experiment directories. Hidden folders are skipped,
    experiment directories are not searched further, and symbolic links are listed but not
    descended into.
    """
    found: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append(path)

    for root in roots:
        if not os.path.isdir(root):
            what = "is a file" if os.path.exists(root) else "does not exist"
            problems.append(f"{root} {what}; expected a folder holding experiment directories")
            continue
        if _is_experiment(root):
            add(root)
            continue
        before = len(found)
        stack = [(root, 0)]
        while stack:
            folder, level = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda entry: entry.name, reverse=True)
            except OSError as error:
                problems.append(f"cannot list {folder}: {error.strerror or error}")
                continue
            for entry in entries:
                if ".purging-" in entry.name and entry.name.startswith("."):
                    notes.append(
                        f"{os.path.join(folder, entry.name)} is left over from an "
                        "interrupted purge; check it and delete it yourself"
                    )
                    continue
                if entry.name.startswith("."):
                    continue
                try:
                    if not entry.is_dir():
                        continue
                    link = entry.is_symlink()
                except OSError:
                    continue
                path = os.path.join(folder, entry.name) if folder != "." else entry.name
                if _is_experiment(path):
                    add(path)
                elif level + 1 < depth and not link:
                    stack.append((path, level + 1))
        if len(found) == before:
            notes.append(f"no experiment directories in {root} (searched {depth} levels deep)")
    return found, problems, notes


def _legacy_start(directory: str) -> float | None:
    """When a run without a record started: its marker's date, else its config's mtime."""
    from ..directory._layout import read_marker

    marker = read_marker(directory)
    if marker and isinstance(marker.get("created"), str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(marker["created"]).timestamp()
        except ValueError:
            pass
    try:
        return os.path.getmtime(os.path.join(directory, CONFIG_FILE))
    except OSError:
        return None


def git_of(record: dict[str, Any] | None, config: dict[str, Any] | None) -> dict[str, Any]:
    git = record.get("git") if record else None
    if isinstance(git, dict):
        return git
    config = config or {}
    return {
        "revision": config.get("git_rev"),
        "branch": None,
        "dirty": config.get("git_dirty"),
        "patch": None,
    }


def summarize(directory: str) -> dict[str, Any]:
    """One ``speedrun ls`` row of ``directory`` as a dict (the ``--json`` output).

    Raises
    ------
    Problem
        The run record or (for a run without one) the configuration cannot be read.
    """
    try:
        record = read_run_record(directory)
        config = None
        if record is None and os.path.exists(os.path.join(directory, CONFIG_FILE)):
            config = load_config(os.path.join(directory, CONFIG_FILE))
    except SpeedrunError as error:
        raise Problem(one_line(error)) from None
    status = resolve_status(directory, record)
    latest = latest_valid_checkpoint(directory)
    git = git_of(record, config)
    history = [entry for entry in (record or {}).get("history") or [] if isinstance(entry, dict)]
    attempts = [*history, record] if record else []
    started = next((a.get("started_at") for a in attempts if a.get("started_at")), None)
    if not attempts:
        started = _legacy_start(directory)
    duration: float | None = None
    estimated = False
    for index, attempt in enumerate(attempts):
        begin, end = attempt.get("started_at"), attempt.get("ended_at")
        if not isinstance(begin, (int, float)):
            continue
        if end is None and index == len(attempts) - 1 and status == "running":
            end = time.time()
        elif end is None:  # killed: until it last wrote a checkpoint or a log
            end = attempt.get("last_activity_at")
            if end is None and index == len(attempts) - 1:
                end = last_activity(directory)
            estimated = True
        if isinstance(end, (int, float)):
            duration = (duration or 0.0) + max(end - begin, 0.0)
        else:
            estimated = True
    inherit = (record or {}).get("inherit")
    return {
        "directory": directory,
        "status": status,
        "exception": (record or {}).get("exception") if status == "crashed" else None,
        "step": latest[0] if latest else None,
        "final_step": (record or {}).get("final_step"),
        "parent": inherit.get("path") if isinstance(inherit, dict) else None,
        "git_revision": git.get("revision"),
        "git_branch": git.get("branch"),
        "git_dirty": git.get("dirty"),
        "started_at": started,
        "ended_at": (record or {}).get("ended_at"),
        "duration_seconds": duration,
        "duration_estimated": estimated,
        "attempts": len(attempts),
        "host": (record or {}).get("host"),
    }


# ------------------------------------------------------------------------------------------------
# comparing and following runs


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same kind (``1`` and ``1.0``, ``1`` and ``true`` differ)."""
    if type(a) is not type(b) and not (
        isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
    ):
        return False
    return bool(a == b)


def diff_configs(a: Any, b: Any, path: str = "") -> list[dict[str, Any]]:
    """The differences from config ``a`` to ``b`` as ``{"change", "path", "old", "new"}``.

    Mappings are compared key by key; lists of equal length element by element, a list that
    grows or shrinks at the end as added or removed elements, and other lists as a whole.
    """
    changes: list[dict[str, Any]] = []

    def at(key: Any) -> str:
        return f"{path}/{key}" if path else str(key)

    if isinstance(a, dict) and isinstance(b, dict):
        for key, old in a.items():
            if key in b:
                changes.extend(diff_configs(old, b[key], at(key)))
            else:
                changes.append({"change": "removed", "path": at(key), "old": old, "new": None})
        for key, new in b.items():
            if key not in a:
                changes.append({"change": "added", "path": at(key), "old": None, "new": new})
        return changes
    if isinstance(a, list) and isinstance(b, list):
        shorter = min(len(a), len(b))
        if len(a) == len(b) or all(_same(x, y) for x, y in zip(a[:shorter], b[:shorter])):
            for index in range(shorter):
                changes.extend(diff_configs(a[index], b[index], at(index)))
            for index in range(shorter, len(a)):
                changes.append(
                    {"change": "removed", "path": at(index), "old": a[index], "new": None}
                )
            for index in range(shorter, len(b)):
                changes.append({"change": "added", "path": at(index), "old": None, "new": b[index]})
            return changes
    if not _same(a, b):
        changes.append({"change": "changed", "path": path or "(top level)", "old": a, "new": b})
    return changes


class Run:
    """What ``diff`` and ``show`` know about one argument: a directory or a .yml file."""

    def __init__(self, target: str) -> None:
        self.target = target
        if os.path.isfile(target) and target.endswith((".yml", ".yaml")):
            self.directory: str | None = None
            self.config_file = target
            self.record: dict[str, Any] | None = None
        else:
            self.directory = _require_experiment(target)
            self.config_file = os.path.join(target, CONFIG_FILE)
            self.record = read_run_record(target)
            if not os.path.isfile(self.config_file):
                raise ExperimentDirectoryError(
                    f"{target} has no {CONFIG_FILE}: the run was never set up with "
                    "auto_setup() (or its configuration was removed)"
                )
        self.config = load_config(self.config_file)

    @property
    def git(self) -> dict[str, Any]:
        return git_of(self.record, self.config)

    def patch(self) -> bytes | None:
        """A digest of the run's git patch: only a regular file inside the run's folder, read
        up to :data:`PATCH_LIMIT` bytes (None when there is none or it is not such a file)."""
        name = self.git.get("patch")
        if self.directory is None or not isinstance(name, str):
            return None
        import hashlib
        import stat

        folder = os.path.realpath(self.directory)
        path = os.path.realpath(os.path.join(self.directory, "Configurations", name))
        if not path.startswith(folder + os.sep):
            return None  # the record points outside the run: not the run's patch
        try:
            with open(path, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    return None  # a device (/dev/zero) or a pipe would never end
                digest = hashlib.sha256()
                remaining = PATCH_LIMIT
                while remaining > 0:
                    chunk = handle.read(min(remaining, 2**20))
                    if not chunk:
                        break
                    digest.update(chunk)
                    remaining -= len(chunk)
                if remaining <= 0 and handle.read(1):
                    digest.update(b"(longer than the limit)")
                return digest.digest()
        except OSError:
            return None

    def command_flags(self) -> dict[str, Any] | None:
        """The command line's script, extra positionals and flags, paths made absolute."""
        if not self.record:
            return None
        from ..config._arguments import parse_arguments

        command = self.record.get("command") or {}
        argv = command.get("argv") or []
        cwd = command.get("cwd") or "."
        try:
            parsed = parse_arguments(argv)
        except SpeedrunError:
            return {"command": " ".join(map(str, argv))}
        flags: dict[str, Any] = {}
        if argv:
            flags["script"] = display_path(os.path.join(cwd, argv[0]))
        if parsed.positionals[1:]:
            flags["arguments"] = " ".join(parsed.positionals[1:])
        for name, raw in parsed.flags.items():
            if name not in _IGNORED_FLAGS:
                flags[f"--{name}"] = raw
        inherit = self.record.get("inherit")
        if isinstance(inherit, dict) and inherit.get("path"):
            flags["--inherit"] = display_path(inherit["path"])
        if self.record.get("macros"):
            flags["--macro"] = ":".join(map(display_path, self.record["macros"]))
        return flags


def lineage(run: Run, limit: int = 100) -> list[dict[str, Any]]:
    """The chain of ``--inherit`` parents of ``run``, starting with ``run`` itself."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    path: str | None = run.directory or run.config_file
    record = run.record
    while path is not None and len(chain) < limit:
        real = os.path.realpath(path)
        entry: dict[str, Any] = {
            "path": path,
            "kind": "directory"
            if os.path.isdir(path)
            else "file"
            if os.path.isfile(path)
            else "missing",
        }
        if real in seen:
            entry["kind"] = "cycle"
            chain.append(entry)
            break
        seen.add(real)
        if entry["kind"] == "directory":
            if record is None and chain:
                try:
                    record = read_run_record(path)
                except SpeedrunError as error:
                    entry["problem"] = one_line(error)
            entry["status"] = resolve_status(path, record)
            git = git_of(record, None)
            entry["git_revision"], entry["git_dirty"] = git.get("revision"), git.get("dirty")
            entry["started_at"] = (record or {}).get("started_at")
        chain.append(entry)
        inherit = (record or {}).get("inherit")
        path = (
            inherit.get("path")
            if isinstance(inherit, dict) and entry["kind"] == "directory"
            else None
        )
        record = None
    return chain
