"""The ``speedrun`` command: list, compare and explain experiment directories.

::

    speedrun ls [DIR ...] [--json]        one row per experiment directory, oldest first
    speedrun diff A B [--json]            config, git and command-line differences (exit 1)
    speedrun show A [--json]              config, lineage through --inherit, provenance
    speedrun mixins [--json]              installed speedrun distributions and mixins
    speedrun completion bash|zsh          a completion script to source

Every problem is one line on stderr: ``speedrun <command>: error: <what and how to fix>``.
Exit codes: 0 fine (``diff``: identical), 1 differences (``diff``) or directories that were
missing or skipped (``ls``), 2 errors.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._errors import ExperimentDirectoryError, SpeedrunError
from ._runinfo import (
    PATCH_NAME,
    Tagged,
    last_activity,
    latest_valid_checkpoint,
    load_config,
    read_run_record,
    resolve_status,
)

__all__ = ["main"]

CONFIG_FILE = os.path.join("Configurations", "train_config.yml")
_GIT_KEYS = ("git_rev", "git_dirty")  # in the config, but compared in the git section
_IGNORED_FLAGS = frozenset({"purge", "resume"})  # how a directory was handled, not what ran
EXIT_OK, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2


class _Problem(Exception):
    """A per-item problem reported as one line (the command goes on with the other items)."""


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


# ------------------------------------------------------------------------------------------------
# formatting


def _display_path(path: str) -> str:
    """``path`` relative to the working folder when it is below it, else absolute."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except ValueError:
        return absolute
    return absolute if relative.startswith(".." + os.sep) or relative == ".." else relative


def _format_time(moment: float | None) -> str:
    if moment is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))


def _format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        return f"{hours // 24}d{hours % 24:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _plain_string(text: str) -> bool:
    """Whether ``text`` reads back as the same string when written without quotes."""
    if not text or text != text.strip() or any(ch in text for ch in "\n#:{}[],&*!|>'\"%@`"):
        return False
    from ._yaml import loads_yaml

    try:
        return bool(loads_yaml(text) == text)
    except SpeedrunError:
        return False


def format_value(value: Any) -> str:
    """A config value on one line, YAML-like: ``0.01``, ``cosine``, ``'0.1'``, ``[64, 64]``."""
    if isinstance(value, Tagged):
        return f"{value.tag} {format_value(value.data)}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if _plain_string(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tagged):
        return {"tag": value.tag, "data": _jsonable(value.data)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _table(header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = []
    for row in [list(header), *rows]:
        lines.append("  ".join(str(cell).ljust(width) for cell, width in
                               zip(row, widths)).rstrip())
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# experiment directories


def _is_experiment(path: str) -> bool:
    from ._directory import is_experiment_directory

    if is_experiment_directory(path):
        return True
    # An unmarked folder of the original speedrun: Configurations/ plus Weights/ or Logs/.
    return os.path.isdir(os.path.join(path, "Configurations")) and (
        os.path.isdir(os.path.join(path, "Weights")) or os.path.isdir(os.path.join(path, "Logs")))


def _require_experiment(path: str) -> str:
    if not os.path.exists(path):
        raise ExperimentDirectoryError(f"{path}: no such experiment directory; check the path")
    if not os.path.isdir(path):
        raise ExperimentDirectoryError(
            f"{path} is a file, not an experiment directory; pass the run's folder "
            "(or a .yml configuration file where the command accepts one)")
    if not _is_experiment(path):
        raise ExperimentDirectoryError(
            f"{path} is not a speedrun experiment directory: expected a folder with a "
            f".speedrun marker or {CONFIG_FILE}; pass a run's folder, e.g. experiments/RUN-0")
    return path


def find_experiments(roots: Sequence[str],
                     depth: int = 3) -> tuple[list[str], list[str], list[str]]:
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
    from ._directory import read_marker

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


def _git_of(record: dict[str, Any] | None, config: dict[str, Any] | None) -> dict[str, Any]:
    git = record.get("git") if record else None
    if isinstance(git, dict):
        return git
    config = config or {}
    return {"revision": config.get("git_rev"), "branch": None, "dirty": config.get("git_dirty"),
            "patch": None}


def summarize(directory: str) -> dict[str, Any]:
    """One ``speedrun ls`` row of ``directory`` as a dict (the ``--json`` output).

    Raises
    ------
    _Problem
        The run record or (for a run without one) the configuration cannot be read.
    """
    try:
        record = read_run_record(directory)
        config = None
        if record is None and os.path.exists(os.path.join(directory, CONFIG_FILE)):
            config = load_config(os.path.join(directory, CONFIG_FILE))
    except SpeedrunError as error:
        raise _Problem(_one_line(error)) from None
    status = resolve_status(directory, record)
    latest = latest_valid_checkpoint(directory)
    git = _git_of(record, config)
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


def _short_revision(revision: Any, dirty: Any) -> str:
    if not revision:
        return "-"
    return str(revision)[:8] + ("*" if dirty else "")


def command_ls(args: Any) -> int:
    directories, problems, notes = find_experiments(args.directories or ["."], depth=args.depth)
    rows, skipped = [], []
    for directory in directories:
        try:
            rows.append(summarize(directory))
        except _Problem as problem:
            skipped.append(f"skipped {directory}: {problem}")
    rows.sort(key=lambda row: (row["started_at"] is not None, row["started_at"] or 0.0,
                               row["directory"]), reverse=args.reverse)
    if args.json:
        _print_json(rows)
    elif rows:
        table = []
        for row in rows:
            status = row["status"] + (f" ({row['exception']})" if row["exception"] else "")
            duration = _format_duration(row["duration_seconds"])
            if row["duration_estimated"] and row["duration_seconds"] is not None:
                duration = "~" + duration
            table.append([
                _display_path(row["directory"]), status,
                "-" if row["step"] is None else str(row["step"]),
                _display_path(row["parent"]) if row["parent"] else "-",
                _short_revision(row["git_revision"], row["git_dirty"]),
                _format_time(row["started_at"]), duration,
            ])
        print(_table(["NAME", "STATUS", "STEP", "PARENT", "GIT", "STARTED", "DURATION"], table))
    for line in problems + notes + skipped:
        print(f"speedrun ls: {line}", file=sys.stderr)
    return EXIT_DIFFERENT if problems or skipped else EXIT_OK


# ------------------------------------------------------------------------------------------------
# diff


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same kind (``1`` and ``1.0``, ``1`` and ``true`` differ)."""
    if type(a) is not type(b) and not (isinstance(a, (list, tuple))
                                       and isinstance(b, (list, tuple))):
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
                changes.append({"change": "removed", "path": at(index), "old": a[index],
                                "new": None})
            for index in range(shorter, len(b)):
                changes.append({"change": "added", "path": at(index), "old": None,
                                "new": b[index]})
            return changes
    if not _same(a, b):
        changes.append({"change": "changed", "path": path or "(top level)", "old": a, "new": b})
    return changes


class _Run:
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
                    "auto_setup() (or its configuration was removed)")
        self.config = load_config(self.config_file)

    @property
    def git(self) -> dict[str, Any]:
        return _git_of(self.record, self.config)

    def patch(self) -> bytes | None:
        name = self.git.get("patch")
        if self.directory is None or not isinstance(name, str):
            return None
        try:
            with open(os.path.join(self.directory, "Configurations", name), "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def command_flags(self) -> dict[str, Any] | None:
        """The command line's script, extra positionals and flags, paths made absolute."""
        if not self.record:
            return None
        from ._arguments import parse_arguments

        command = self.record.get("command") or {}
        argv = command.get("argv") or []
        cwd = command.get("cwd") or "."
        try:
            parsed = parse_arguments(argv)
        except SpeedrunError:
            return {"command": " ".join(map(str, argv))}
        flags: dict[str, Any] = {}
        if argv:
            flags["script"] = _display_path(os.path.join(cwd, argv[0]))
        if parsed.positionals[1:]:
            flags["arguments"] = " ".join(parsed.positionals[1:])
        for name, raw in parsed.flags.items():
            if name not in _IGNORED_FLAGS:
                flags[f"--{name}"] = raw
        inherit = self.record.get("inherit")
        if isinstance(inherit, dict) and inherit.get("path"):
            flags["--inherit"] = _display_path(inherit["path"])
        if self.record.get("macros"):
            flags["--macro"] = ":".join(map(_display_path, self.record["macros"]))
        return flags


def _git_changes(a: _Run, b: _Run) -> list[dict[str, Any]]:
    git_a, git_b = a.git, b.git
    changes = []
    for key in ("revision", "dirty"):
        if git_a.get(key) != git_b.get(key):
            changes.append({"change": "changed", "path": key, "old": git_a.get(key),
                            "new": git_b.get(key)})
    if git_a.get("dirty") and git_b.get("dirty") and not changes and a.patch() != b.patch():
        changes.append({"change": "changed", "path": "uncommitted changes",
                        "old": f"{a.target}/Configurations/{PATCH_NAME}",
                        "new": f"{b.target}/Configurations/{PATCH_NAME}"})
    return changes


def _command_changes(a: _Run, b: _Run) -> list[dict[str, Any]]:
    flags_a, flags_b = a.command_flags(), b.command_flags()
    if flags_a is None or flags_b is None:
        return []
    return diff_configs(flags_a, flags_b)


def _print_changes(title: str, changes: list[dict[str, Any]]) -> None:
    if not changes:
        return
    formatters: dict[str, Callable[[Any], str]] = {"command line": str, "git": _git_value}
    show = formatters.get(title, format_value)
    counts = {kind: sum(1 for c in changes if c["change"] == kind)
              for kind in ("changed", "added", "removed")}
    summary = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
    print(f"{title} ({summary}):")
    for change in changes:
        if change["change"] == "changed":
            print(f"  ~ {change['path']}: {show(change['old'])} -> {show(change['new'])}")
        elif change["change"] == "added":
            print(f"  + {change['path']}: {show(change['new'])}")
        else:
            print(f"  - {change['path']}: {show(change['old'])}")


def _git_value(value: Any) -> str:
    if isinstance(value, bool):
        return "dirty" if value else "clean"
    return "-" if value is None else str(value)


def command_diff(args: Any) -> int:
    a, b = _Run(args.a), _Run(args.b)
    strip = {key: None for key in _GIT_KEYS}
    config_a = {k: v for k, v in a.config.items() if k not in strip}
    config_b = {k: v for k, v in b.config.items() if k not in strip}
    sections = {"config": diff_configs(config_a, config_b)}
    if not args.config_only:
        sections["git"] = _git_changes(a, b)
        sections["command line"] = _command_changes(a, b)
    different = any(sections.values())
    if args.json:
        _print_json({"a": args.a, "b": args.b, "identical": not different,
                     **{name.replace(" ", "_"): _jsonable(changes)
                        for name, changes in sections.items()}})
    elif different:
        print(f"--- {args.a}\n+++ {args.b}")
        for title, changes in sections.items():
            _print_changes(title, changes)
    return EXIT_DIFFERENT if different else EXIT_OK


# ------------------------------------------------------------------------------------------------
# show


def lineage(run: _Run, limit: int = 100) -> list[dict[str, Any]]:
    """The chain of ``--inherit`` parents of ``run``, starting with ``run`` itself."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    path: str | None = run.directory or run.config_file
    record = run.record
    while path is not None and len(chain) < limit:
        real = os.path.realpath(path)
        entry: dict[str, Any] = {"path": path, "kind": "directory" if os.path.isdir(path)
                                 else "file" if os.path.isfile(path) else "missing"}
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
                    entry["problem"] = _one_line(error)
            entry["status"] = resolve_status(path, record)
            git = _git_of(record, None)
            entry["git_revision"], entry["git_dirty"] = git.get("revision"), git.get("dirty")
            entry["started_at"] = (record or {}).get("started_at")
        chain.append(entry)
        inherit = (record or {}).get("inherit")
        path = inherit.get("path") if isinstance(inherit, dict) and entry["kind"] == \
            "directory" else None
        record = None
    return chain


def _provenance_lines(run: _Run) -> list[tuple[str, str]]:
    record = run.record
    if not record:
        return [("record", "none (run not started by auto_setup(), or by the original speedrun)")]
    import shlex

    command = record.get("command") or {}
    argv = command.get("orig_argv") or [command.get("executable", "python"),
                                        *command.get("argv", [])]
    git = _git_of(record, None)
    git_text = str(git.get("revision") or "not a git checkout")
    if git.get("branch"):
        git_text += f" on {git['branch']}"
    if git.get("dirty"):
        patch = git.get("patch")
        where = (_display_path(os.path.join(run.directory or "", "Configurations", patch))
                 if isinstance(patch, str) else str(patch))
        git_text += f", uncommitted changes: {where}"
    inherit = record.get("inherit")
    status = resolve_status(run.directory or ".", record)
    ended = record.get("ended_at")
    started = record.get("started_at")
    status_text = status
    if record.get("exception"):
        status_text += f" ({record['exception']}: {record.get('message') or ''})".replace(": )",
                                                                                       ")")
    elif status == "preempted" and record.get("message"):
        status_text += f" ({record['message']})"
    lines = [
        ("status", status_text),
        ("command", f"cd {shlex.quote(command.get('cwd', '.'))} && "
                    + " ".join(shlex.quote(str(part)) for part in argv)),
        ("inherit", f"{inherit.get('argument')} ({inherit.get('config_file')})"
         if isinstance(inherit, dict) else "-"),
        ("macros", ", ".join(record.get("macros") or []) or "-"),
        ("git", git_text),
        ("python", f"{record.get('python')} ({command.get('executable', '?')})"),
        ("speedrun", ", ".join(f"{name} {version}" for name, version in
                               (record.get("speedrun") or {}).items()) or "-"),
        ("host", f"{record.get('host')}, pid {record.get('pid')}"
                 + (f", user {record['user']}" if record.get("user") else "")
                 + (f", SLURM job {record['slurm_job_id']}" if record.get("slurm_job_id")
                    else "")),
        ("class", str(record.get("experiment_class"))),
        ("started", f"{record.get('started')}"),
        ("ended", f"{record.get('ended')} (ran {_format_duration(ended - started)})"
         if isinstance(ended, (int, float)) and isinstance(started, (int, float)) else "-"),
        ("final step", str(record.get("final_step", "-"))),
    ]
    history = [entry for entry in record.get("history") or [] if isinstance(entry, dict)]
    if history:
        parts = [f"{entry.get('attempt')}: {entry.get('status')} ({entry.get('started')})"
                 for entry in history]
        parts.append(f"{record.get('attempt')}: {status} ({record.get('started')})")
        lines.append(("attempts", "; ".join(parts)))
    return lines


def command_show(args: Any) -> int:
    run = _Run(args.directory)
    chain = lineage(run)
    latest = latest_valid_checkpoint(run.directory) if run.directory else None
    if args.json:
        _print_json({
            "directory": run.directory, "config_file": run.config_file,
            "config": _jsonable(run.config), "lineage": chain,
            "status": resolve_status(run.directory, run.record) if run.directory else None,
            "latest_checkpoint_step": latest[0] if latest else None, "record": run.record,
        })
        return EXIT_OK
    with open(run.config_file, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    print(f"config ({_display_path(run.config_file)}):")
    print("\n".join("  " + line for line in text.rstrip("\n").splitlines()) or "  {}")
    print("\nlineage:")
    for depth, entry in enumerate(chain):
        prefix = "  <- " if depth else "  "
        details = [entry["kind"]] if entry["kind"] != "directory" else [
            entry.get("status", "?"),
            "git " + _short_revision(entry.get("git_revision"), entry.get("git_dirty")),
            "started " + _format_time(entry.get("started_at")),
        ]
        if entry.get("problem"):
            details.append(entry["problem"])
        print(f"{prefix}{_display_path(entry['path'])}  ({', '.join(details)})")
    print("\nprovenance:")
    lines = _provenance_lines(run)
    if run.directory:
        lines.insert(1, ("checkpoint", f"latest valid at step {latest[0]}" if latest else "none"))
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"  {name.ljust(width)}  {value}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# mixins


def command_mixins(args: Any) -> int:
    from importlib.metadata import entry_points

    from ._mixins import LEGACY_MIXINS
    from ._provenance import speedrun_distributions

    distributions = speedrun_distributions()
    mixins: list[dict[str, Any]] = []
    for entry_point in sorted(entry_points(group="speedrun.mixins"), key=lambda e: e.name):
        dist = getattr(entry_point, "dist", None)
        mixins.append({
            "name": entry_point.name,
            "class": entry_point.value.rpartition(":")[2],
            "entry_point": entry_point.value,
            "distribution": dist.name if dist is not None else None,
            "version": dist.version if dist is not None else None,
        })
    installed = {mixin["class"].rpartition(".")[2] for mixin in mixins}
    missing = [{"class": name, "install": f"pip install speedrun-{suffix}"}
               for name, suffix in LEGACY_MIXINS.items() if name not in installed]
    if args.json:
        _print_json({"distributions": distributions, "mixins": mixins, "not_installed": missing})
        return EXIT_OK
    print("distributions:")
    print("\n".join("  " + line for line in _table(
        ["NAME", "VERSION"], [[name, version] for name, version in distributions.items()]
    ).splitlines()))
    print("\nmixins (entry points in group speedrun.mixins):")
    if mixins:
        print("\n".join("  " + line for line in _table(
            ["NAME", "CLASS", "DISTRIBUTION"],
            [[m["name"], m["entry_point"], f"{m['distribution']} {m['version']}"]
             for m in mixins]).splitlines()))
    else:
        print("  none")
    if missing:
        print("\nnot installed:")
        for item in missing:
            print(f"  {item['class']}: {item['install']}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# completion and main


def command_completion(args: Any) -> int:
    from ._completion import bash_script, zsh_script

    commands = args.python or ["python", "python3"]
    print(bash_script(commands) if args.shell == "bash" else zsh_script(commands), end="")
    return EXIT_OK


def _parser() -> Any:
    import argparse

    from . import __version__

    parser = argparse.ArgumentParser(
        prog="speedrun", description="List, compare and explain speedrun experiment directories.")
    parser.add_argument("--version", action="version", version=f"speedrun-core {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ls = commands.add_parser("ls", help="one row per experiment directory, oldest first",
                             description="List the experiment directories under the folders.")
    ls.add_argument("directories", nargs="*", metavar="DIR",
                    help="experiment directories or folders holding them (default: .)")
    ls.add_argument("--json", action="store_true", help="print a JSON list for scripts")
    ls.add_argument("-r", "--reverse", action="store_true", help="newest first")
    ls.add_argument("--depth", type=int, default=3, metavar="N",
                    help="folder levels searched below each DIR (default: 3)")
    ls.set_defaults(handler=command_ls)

    diff = commands.add_parser(
        "diff", help="what differs between two runs",
        description="Config differences as slash paths, then git revision and command-line "
                    "differences. Exit status 0 when identical, 1 when different, 2 on error.")
    diff.add_argument("a", metavar="A", help="experiment directory or .yml file")
    diff.add_argument("b", metavar="B", help="experiment directory or .yml file")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.add_argument("--config-only", action="store_true",
                      help="compare the configurations only")
    diff.set_defaults(handler=command_diff)

    show = commands.add_parser("show", help="config, lineage and provenance of a run",
                               description="The resolved config, the chain of --inherit "
                                           "parents and the provenance of a run.")
    show.add_argument("directory", metavar="DIR", help="experiment directory (or .yml file)")
    show.add_argument("--json", action="store_true", help="print everything as JSON")
    show.set_defaults(handler=command_show)

    mixins = commands.add_parser("mixins", help="installed speedrun distributions and mixins",
                                 description="Read from entry points; no mixin is imported.")
    mixins.add_argument("--json", action="store_true", help="print JSON")
    mixins.set_defaults(handler=command_mixins)

    completion = commands.add_parser(
        "completion", help="print a shell completion script",
        description="Print a completion script; load it with `source <(speedrun completion "
                    "bash)` (add that line to ~/.bashrc yourself to keep it).")
    completion.add_argument("shell", choices=["bash", "zsh"])
    completion.add_argument("--python", action="append", metavar="COMMAND",
                            help="commands that start experiments, whose --config.<TAB> is "
                                 "completed (repeatable; default: python and python3)")
    completion.set_defaults(handler=command_completion)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``speedrun`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["__complete"]:  # called by the completion scripts
        from ._completion import complete

        return complete(arguments[1:])
    args = _parser().parse_args(arguments)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `speedrun ls | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (SpeedrunError, OSError) as error:
        print(f"speedrun {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
