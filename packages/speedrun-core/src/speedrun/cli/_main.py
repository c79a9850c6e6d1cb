"""The ``speedrun`` command: list, compare and explain experiment directories.

::

    speedrun ls [DIR ...] [--json]        one row per experiment directory, oldest first
    speedrun diff A B [--json]            config, git and command-line differences (exit 1)
    speedrun show A [--json]              config, declared config keys, lineage through
                                          --inherit, provenance
    speedrun mixins [--keys] [--json]     installed speedrun distributions and mixins (--keys:
                                          the config keys they read)
    speedrun completion bash|zsh          a completion script to source

Every problem is one line on stderr: ``speedrun <command>: error: <what and how to fix>``.
Exit codes: 0 fine (``diff``: identical), 1 differences (``diff``) or directories that were
missing or skipped (``ls``), 2 errors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import SpeedrunError
from ..experiment._runinfo import PATCH_NAME, latest_valid_checkpoint, resolve_status
from ._format import (
    format_duration,
    format_time,
    format_value,
    jsonable,
    print_json,
    shorten,
    table,
)
from ._inspection import (
    Problem,
    Run,
    clean_text,
    diff_configs,
    display_path,
    find_experiments,
    git_of,
    lineage,
    one_line,
    summarize,
)
from ._runkeys import key_lines, used_keys

__all__ = ["main"]

_GIT_KEYS = ("git_rev", "git_dirty")  # in the config, but compared in the git section
# What odd (hand-edited, planted, damaged) files can raise while they are read and formatted.
_ODD_CONTENT = (
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
    UnicodeError,
)


class _CleanStream:
    """Wraps stdout/stderr: strips terminal control characters from everything written, and
    writes text the terminal's encoding cannot show (bytes of non-UTF-8 names) escaped."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        text = clean_text(text)
        try:
            return int(self._stream.write(text))
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "utf-8"
            return int(
                self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


EXIT_OK, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2
_STATUS_WIDTH = 24  # speedrun ls: a longer status (a long exception name) is shortened
_VALUE_WIDTH = 120  # speedrun diff: a longer value is shortened


# ------------------------------------------------------------------------------------------------
# ls


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
        except Problem as problem:
            skipped.append(f"skipped {directory}: {problem}")
        except _ODD_CONTENT as error:  # a value no speedrun wrote: skip the run, go on
            skipped.append(
                f"skipped {directory}: unexpected content in its files "
                f"({type(error).__name__}: {one_line(error)[:200]})"
            )
    rows.sort(
        key=lambda row: (row["started_at"] is not None, row["started_at"] or 0.0, row["directory"]),
        reverse=args.reverse,
    )
    if args.json:
        print_json(rows)
    elif rows:
        cells = []
        for row in rows:
            exception = str(row["exception"] or "").rpartition(".")[2]  # no module path
            status = shorten(
                row["status"] + (f" ({exception})" if exception else ""), _STATUS_WIDTH
            )
            duration = format_duration(row["duration_seconds"])
            if row["duration_estimated"] and row["duration_seconds"] is not None:
                duration = "~" + duration
            cells.append(
                [
                    display_path(row["directory"]),
                    status,
                    "-" if row["step"] is None else str(row["step"]),
                    display_path(row["parent"]) if row["parent"] else "-",
                    _short_revision(row["git_revision"], row["git_dirty"]),
                    format_time(row["started_at"]),
                    duration,
                ]
            )
        print(table(["NAME", "STATUS", "STEP", "PARENT", "GIT", "STARTED", "DURATION"], cells))
    for line in problems + notes + skipped:
        print(f"speedrun ls: {line}", file=sys.stderr)
    return EXIT_DIFFERENT if problems or skipped else EXIT_OK


# ------------------------------------------------------------------------------------------------
# diff


def _git_changes(a: Run, b: Run) -> list[dict[str, Any]]:
    git_a, git_b = a.git, b.git
    changes = []
    for key in ("revision", "dirty"):
        if git_a.get(key) != git_b.get(key):
            changes.append(
                {"change": "changed", "path": key, "old": git_a.get(key), "new": git_b.get(key)}
            )
    if git_a.get("dirty") and git_b.get("dirty") and not changes and a.patch() != b.patch():
        changes.append(
            {
                "change": "changed",
                "path": "uncommitted changes",
                "old": f"{a.target}/Configurations/{PATCH_NAME}",
                "new": f"{b.target}/Configurations/{PATCH_NAME}",
            }
        )
    return changes


def _command_changes(a: Run, b: Run) -> list[dict[str, Any]]:
    flags_a, flags_b = a.command_flags(), b.command_flags()
    if flags_a is None or flags_b is None:
        return []
    return diff_configs(flags_a, flags_b)


def _print_changes(title: str, changes: list[dict[str, Any]]) -> None:
    if not changes:
        return
    formatters: dict[str, Callable[[Any], str]] = {"command line": str, "git": _git_value}
    full = formatters.get(title, format_value)

    def show(value: Any) -> str:
        text = full(value)
        if len(text) > _VALUE_WIDTH:  # a huge value (a long list given with --config)
            return f"{text[: _VALUE_WIDTH - 1]}… ({len(text)} characters; --json shows all)"
        return text

    counts = {
        kind: sum(1 for c in changes if c["change"] == kind)
        for kind in ("changed", "added", "removed")
    }
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
    a, b = Run(args.a), Run(args.b)
    strip = {key: None for key in _GIT_KEYS}
    config_a = {k: v for k, v in a.config.items() if k not in strip}
    config_b = {k: v for k, v in b.config.items() if k not in strip}
    sections = {"config": diff_configs(config_a, config_b)}
    if not args.config_only:
        sections["git"] = _git_changes(a, b)
        sections["command line"] = _command_changes(a, b)
    different = any(sections.values())
    if args.json:
        print_json(
            {
                "a": args.a,
                "b": args.b,
                "identical": not different,
                **{name.replace(" ", "_"): jsonable(changes) for name, changes in sections.items()},
            }
        )
    elif different:
        print(f"--- {args.a}\n+++ {args.b}")
        for title, changes in sections.items():
            _print_changes(title, changes)
    return EXIT_DIFFERENT if different else EXIT_OK


# ------------------------------------------------------------------------------------------------
# show


def _provenance_lines(run: Run) -> list[tuple[str, str]]:
    record = run.record
    if not record:
        return [("record", "none (run not started by auto_setup(), or by the original speedrun)")]
    import shlex

    command = record.get("command") or {}
    argv = command.get("orig_argv") or [
        command.get("executable", "python"),
        *command.get("argv", []),
    ]
    git = git_of(record, None)
    git_text = str(git.get("revision") or "not a git checkout")
    if git.get("branch"):
        git_text += f" on {git['branch']}"
    if git.get("dirty"):
        patch = git.get("patch")
        where = (
            display_path(os.path.join(run.directory or "", "Configurations", patch))
            if isinstance(patch, str)
            else str(patch)
        )
        git_text += f", uncommitted changes: {where}"
    inherit = record.get("inherit")
    status = resolve_status(run.directory or ".", record)
    ended = record.get("ended_at")
    started = record.get("started_at")
    status_text = status
    if record.get("exception"):
        status_text += f" ({record['exception']}: {record.get('message') or ''})".replace(
            ": )", ")"
        )
    elif status == "preempted" and record.get("message"):
        status_text += f" ({record['message']})"
    lines = [
        ("status", status_text),
        (
            "command",
            f"cd {shlex.quote(command.get('cwd', '.'))} && "
            + " ".join(shlex.quote(str(part)) for part in argv),
        ),
        (
            "inherit",
            f"{inherit.get('argument')} ({inherit.get('config_file')})"
            if isinstance(inherit, dict)
            else "-",
        ),
        ("macros", ", ".join(record.get("macros") or []) or "-"),
        ("git", git_text),
        ("python", f"{record.get('python')} ({command.get('executable', '?')})"),
        (
            "speedrun",
            ", ".join(
                f"{name} {version}" for name, version in (record.get("speedrun") or {}).items()
            )
            or "-",
        ),
        (
            "host",
            f"{record.get('host')}, pid {record.get('pid')}"
            + (f", user {record['user']}" if record.get("user") else "")
            + (f", SLURM job {record['slurm_job_id']}" if record.get("slurm_job_id") else ""),
        ),
        ("class", str(record.get("experiment_class"))),
        ("started", f"{record.get('started')}"),
        (
            "ended",
            f"{record.get('ended')} (this attempt ran {format_duration(ended - started)})"
            if isinstance(ended, (int, float)) and isinstance(started, (int, float))
            else "-",
        ),
        ("final step", _final_step(run, record, status)),
    ]
    if run.directory:
        summary = summarize(run.directory)
        if summary["duration_seconds"] is not None:
            total = ("~" if summary["duration_estimated"] else "") + format_duration(
                summary["duration_seconds"]
            )
            attempts = summary["attempts"]
            lines.append(
                ("run time", total + (f" over {attempts} attempts" if attempts > 1 else ""))
            )
    resume_overrides = record.get("resume_overrides")
    if resume_overrides:
        lines.append(
            (
                "on resume",
                ", ".join(
                    f"{path}={shorten(format_value(value), 40)}"
                    for path, value in resume_overrides.items()
                )
                + " (config only: restored objects keep saved values unless a post_load hook "
                "re-applies them)",
            )
        )
    evaluations = [entry for entry in record.get("evaluations") or [] if isinstance(entry, dict)]
    if evaluations:
        lines.append(
            (
                "evaluated",
                "; ".join(
                    f"{entry.get('method')}: {entry.get('status')} at step {entry.get('final_step')} "
                    f"({entry.get('started')})"
                    for entry in evaluations[-5:]
                )
                + (f" (and {len(evaluations) - 5} earlier)" if len(evaluations) > 5 else ""),
            )
        )
    history = [entry for entry in record.get("history") or [] if isinstance(entry, dict)]
    if history:
        parts = [
            f"{entry.get('attempt')}: {entry.get('status')} ({entry.get('started')})"
            for entry in history
        ]
        parts.append(f"{record.get('attempt')}: {status} ({record.get('started')})")
        lines.append(("attempts", "; ".join(parts)))
    return lines


def _final_step(run: Run, record: dict[str, Any], status: str) -> str:
    step = record.get("final_step")
    if step is not None:
        return str(step)
    if status in ("killed", "running") and run.directory:
        latest = latest_valid_checkpoint(run.directory)
        where = "latest valid checkpoint" if latest else "no checkpoint"
        if status == "killed":
            return (
                f"{latest[0]} ({where}; the process died without recording its end)"
                if latest
                else f"- ({where}; the process died without recording its end)"
            )
        return f"{latest[0]} so far ({where})" if latest else "- (running, no checkpoint yet)"
    return "-"


def command_show(args: Any) -> int:
    run = Run(args.directory)
    chain = lineage(run)
    latest = latest_valid_checkpoint(run.directory) if run.directory else None
    if args.json:
        print_json(
            {
                "directory": run.directory,
                "config_file": run.config_file,
                "config": jsonable(run.config),
                "lineage": chain,
                "status": resolve_status(run.directory, run.record) if run.directory else None,
                "latest_checkpoint_step": latest[0] if latest else None,
                "config_keys": jsonable(used_keys(run.record, run.config)),
                "record": run.record,
            }
        )
        return EXIT_OK
    with open(run.config_file, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    print(f"config ({display_path(run.config_file)}):")
    print("\n".join("  " + line for line in text.rstrip("\n").splitlines()) or "  {}")
    print()
    print("\n".join(key_lines(run.record, run.config, is_run=run.directory is not None)))
    print("\nlineage:")
    for depth, entry in enumerate(chain):
        prefix = "  <- " if depth else "  "
        details = (
            [entry["kind"]]
            if entry["kind"] != "directory"
            else [
                entry.get("status", "?"),
                "git " + _short_revision(entry.get("git_revision"), entry.get("git_dirty")),
                "started " + format_time(entry.get("started_at")),
            ]
        )
        if entry.get("problem"):
            details.append(entry["problem"])
        print(f"{prefix}{display_path(entry['path'])}  ({', '.join(details)})")
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

    from .._mixins import LEGACY_MIXINS
    from ..experiment._provenance import speedrun_distributions

    distributions = speedrun_distributions()
    mixins: list[dict[str, Any]] = []
    for entry_point in sorted(entry_points(group="speedrun.mixins"), key=lambda e: e.name):
        dist = getattr(entry_point, "dist", None)
        mixins.append(
            {
                "name": entry_point.name,
                "class": entry_point.value.rpartition(":")[2],
                "entry_point": entry_point.value,
                "distribution": dist.name if dist is not None else None,
                "version": dist.version if dist is not None else None,
            }
        )
    installed = {mixin["class"].rpartition(".")[2] for mixin in mixins}
    entry_point_names = {mixin["name"] for mixin in mixins}  # a distribution's other names
    missing = [
        {"class": name, "install": f"pip install speedrun-{suffix}"}
        for name, suffix in LEGACY_MIXINS.items()
        if name not in installed and suffix not in entry_point_names
    ]
    if args.keys:
        from ._keys import installed_config_keys

        keys, problems = installed_config_keys(refresh=True)
        for problem in problems:
            print(f"speedrun mixins: cannot load {problem}", file=sys.stderr)
        if args.json:
            print_json({"config_keys": keys})
        else:
            print(
                table(
                    ["KEY", "DEFAULT", "TYPE", "READ BY", "MEANING"],
                    [[k["path"], k["default"], k["kinds"], k["owner"], k["doc"]] for k in keys],
                )
            )
        return EXIT_ERROR if problems else EXIT_OK
    if args.json:
        print_json({"distributions": distributions, "mixins": mixins, "not_installed": missing})
        return EXIT_OK
    print("distributions:")
    print(
        "\n".join(
            "  " + line
            for line in table(
                ["NAME", "VERSION"], [[name, version] for name, version in distributions.items()]
            ).splitlines()
        )
    )
    print("\nmixins (entry points in group speedrun.mixins):")
    if mixins:
        print(
            "\n".join(
                "  " + line
                for line in table(
                    ["NAME", "CLASS", "DISTRIBUTION"],
                    [
                        [m["name"], m["entry_point"], f"{m['distribution']} {m['version']}"]
                        for m in mixins
                    ],
                ).splitlines()
            )
        )
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

    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="speedrun", description="List, compare and explain speedrun experiment directories."
    )
    parser.add_argument("--version", action="version", version=f"speedrun-core {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ls = commands.add_parser(
        "ls",
        help="one row per experiment directory, oldest first",
        description="List the experiment directories under the folders.",
    )
    ls.add_argument(
        "directories",
        nargs="*",
        metavar="DIR",
        help="experiment directories or folders holding them (default: .)",
    )
    ls.add_argument("--json", action="store_true", help="print a JSON list for scripts")
    ls.add_argument("-r", "--reverse", action="store_true", help="newest first")
    ls.add_argument(
        "--depth",
        type=int,
        default=3,
        metavar="N",
        help="folder levels searched below each DIR (default: 3)",
    )
    ls.set_defaults(handler=command_ls)

    diff = commands.add_parser(
        "diff",
        help="what differs between two runs",
        description="Config differences as slash paths, then git revision and command-line "
        "differences. Exit status 0 when identical, 1 when different, 2 on error.",
    )
    diff.add_argument("a", metavar="A", help="experiment directory or .yml file")
    diff.add_argument("b", metavar="B", help="experiment directory or .yml file")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.add_argument("--config-only", action="store_true", help="compare the configurations only")
    diff.set_defaults(handler=command_diff)

    show = commands.add_parser(
        "show",
        help="config, declared keys, lineage and provenance of a run",
        description="The resolved config, the config keys the run's experiment class and "
        "mixins declared (the value the run used, from the config or the declared default, "
        "and the class that reads each), the chain of --inherit parents and the provenance "
        "of a run.",
    )
    show.add_argument("directory", metavar="DIR", help="experiment directory (or .yml file)")
    show.add_argument("--json", action="store_true", help="print everything as JSON")
    show.set_defaults(handler=command_show)

    mixins = commands.add_parser(
        "mixins",
        help="installed speedrun distributions and mixins",
        description="Read from entry points; no mixin is imported.",
    )
    mixins.add_argument("--json", action="store_true", help="print JSON")
    mixins.add_argument(
        "--keys",
        action="store_true",
        help="list the config keys that core and the installed mixins read",
    )
    mixins.set_defaults(handler=command_mixins)

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script; load it with `source <(speedrun completion "
        "bash)` (add that line to ~/.bashrc yourself to keep it).",
    )
    completion.add_argument("shell", choices=["bash", "zsh"])
    completion.add_argument(
        "--python",
        action="append",
        metavar="COMMAND",
        help="commands that start experiments, whose --config.<TAB> is "
        "completed (repeatable; default: python and python3)",
    )
    completion.set_defaults(handler=command_completion)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``speedrun`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["__complete"]:  # called by the completion scripts
        from ._completion import complete

        return complete(arguments[1:])
    args = _parser().parse_args(arguments)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _CleanStream(stdout), _CleanStream(stderr)
    try:
        return _run(args)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _run(args: Any) -> int:
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `speedrun ls | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (SpeedrunError, OSError) as error:
        print(f"speedrun {args.command}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except _ODD_CONTENT as error:  # never a traceback, never "they differ" (exit 1)
        print(
            f"speedrun {args.command}: error: unexpected content in a run's files "
            f"({type(error).__name__}: {one_line(error)[:300]})",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
