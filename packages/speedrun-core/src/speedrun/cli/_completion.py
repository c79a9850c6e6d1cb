"""Shell completion for ``speedrun`` and for ``python train.py DIR --config.<TAB>``.

``speedrun completion bash`` (or ``zsh``) prints a script the user loads explicitly, e.g. with
``source <(speedrun completion bash)`` in ``~/.bashrc``; nothing is installed into shell start-up
files. The script completes the ``speedrun`` commands, and wraps the completion of ``python``
and ``python3`` (or the commands given with ``--python``) for one case only: a word starting
with ``--config.`` completes the keys of the experiment's configuration, read from the
``--inherit`` target or from ``DIR/Configurations/train_config.yml``. Every other completion of
those commands goes to the completion they had before (loaded lazily, as bash-completion does),
or to file names, so ``python`` completion stays what it was.

The scripts ask ``speedrun __complete config CURRENT_WORD LINE`` for the keys.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from typing import Any

__all__ = ["bash_script", "complete", "config_key_candidates", "zsh_script"]

_COMMAND_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_PREFIX = "--config."
_SUBCOMMANDS = ("ls", "diff", "show", "mixins", "completion")

_BASH = r"""# speedrun completion for bash. Load it from ~/.bashrc with:
#     source <(speedrun completion bash)
# It completes `speedrun`, and `--config.<TAB>` keys for: @COMMANDS@.
# Everything else those commands complete is left to their own completion.

_speedrun_words() {
    local IFS=$' \t\n'
    COMPREPLY+=( $(compgen -W "$1" -- "$2") )
}

_speedrun_paths() {  # $1: current word, $2: also .yml/.yaml files when "yml"
    local IFS=$'\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY+=( $(compgen -d -- "$1") )
    if [[ $2 == yml ]]; then
        COMPREPLY+=( $(compgen -f -X '!*.yml' -- "$1") $(compgen -f -X '!*.yaml' -- "$1") )
    fi
}

_speedrun_complete() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} command= i
    for (( i = 1; i < COMP_CWORD; i++ )); do
        case ${COMP_WORDS[i]} in
            -*) ;;
            *) command=${COMP_WORDS[i]}; break ;;
        esac
    done
    COMPREPLY=()
    case $command in
        "") _speedrun_words "@SUBCOMMANDS@ --help --version" "$cur" ;;
        ls)
            if [[ $prev == --depth ]]; then return 0; fi
            if [[ $cur == -* ]]; then _speedrun_words "--json --reverse --depth --help" "$cur"
            else _speedrun_paths "$cur"; fi ;;
        diff|show)
            if [[ $cur == -* ]]; then
                _speedrun_words "--json --help" "$cur"
                [[ $command == diff ]] && _speedrun_words "--config-only" "$cur"
            else _speedrun_paths "$cur" yml; fi ;;
        mixins) _speedrun_words "--json --help" "$cur" ;;
        completion)
            if [[ $prev == --python ]]; then _speedrun_words "$(compgen -c -- "$cur")" "$cur"
            elif [[ $cur == -* ]]; then _speedrun_words "--python --help" "$cur"
            else _speedrun_words "bash zsh" "$cur"; fi ;;
    esac
    return 0
}
complete -F _speedrun_complete speedrun

# --config.<TAB> for the commands that start experiments --------------------------------------

_speedrun_python_complete() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [[ $cur == --config.* ]] && command -v speedrun >/dev/null 2>&1; then
        local IFS=$'\n' candidates
        candidates=$(command speedrun __complete config "$cur" "${COMP_LINE:0:COMP_POINT}" \
                     2>/dev/null)
        if [[ -n $candidates ]]; then
            COMPREPLY=( $candidates )
            if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *. ]]; then
                compopt -o nospace 2>/dev/null
            fi
            return 0
        fi
    fi
    _speedrun_python_delegate "$@"
}

_speedrun_python_variable() {
    local name=${1##*/}
    printf '_speedrun_python_original_%s' "${name//[^A-Za-z0-9_]/_}"
}

# Put _speedrun_python_complete in front of the completion $1 has now (remembering its function).
_speedrun_python_wrap() {
    local spec fn variable
    variable=$(_speedrun_python_variable "$1")
    spec=$(complete -p -- "$1" 2>/dev/null)
    if [[ $spec == *" -F "* ]]; then fn=${spec##* -F }; fn=${fn%% *}; else fn=; fi
    [[ $fn == _speedrun_python_complete ]] && return 0
    if [[ -z $spec ]]; then
        unset "$variable"  # none yet: a lazy loader may provide one on first use
        complete -o bashdefault -o default -F _speedrun_python_complete -- "$1"
    elif [[ -n $fn ]]; then
        printf -v "$variable" '%s' "$fn"
        eval "${spec/ -F $fn / -F _speedrun_python_complete }"
    else
        printf -v "$variable" '%s' ""
        eval "complete -F _speedrun_python_complete ${spec#complete }"
    fi
}

# First use without a known original: let bash-completion's loader register the command's own
# completion, then wrap that one.
_speedrun_python_load() {
    local loader variable
    variable=$(_speedrun_python_variable "$1")
    printf -v "$variable" '%s' ""
    loader=$(complete -p -D 2>/dev/null)
    [[ $loader == *" -F "* ]] || return 0
    loader=${loader##* -F }; loader=${loader%% *}
    declare -F "$loader" >/dev/null || return 0
    complete -r -- "$1" 2>/dev/null
    "$loader" "$1" >/dev/null 2>&1
    if [[ -n $(complete -p -- "$1" 2>/dev/null) ]]; then
        _speedrun_python_wrap "$1"
    else
        complete -o bashdefault -o default -F _speedrun_python_complete -- "$1"
    fi
}

_speedrun_python_delegate() {
    local variable fn
    variable=$(_speedrun_python_variable "$1")
    [[ -z ${!variable+set} ]] && _speedrun_python_load "$1"
    fn=${!variable-}
    COMPREPLY=()
    if [[ -n $fn && $fn != _speedrun_python_complete ]] && declare -F "$fn" >/dev/null; then
        "$fn" "$@"
        return
    fi
    return 0  # nothing of its own: bash falls back to file names (-o default)
}

for _speedrun_command in @COMMANDS@; do
    _speedrun_python_wrap "$_speedrun_command"
done
unset _speedrun_command
"""

_ZSH = r"""#compdef speedrun
# speedrun completion for zsh. Load it from ~/.zshrc (after compinit) with:
#     source <(speedrun completion zsh)
# It completes `speedrun`, and `--config.<TAB>` keys for: @COMMANDS@.
# Everything else those commands complete is left to their own completion.

if ! (( $+functions[compdef] )); then
    autoload -Uz compinit && compinit
fi

_speedrun_runs() {
    _files -g '*.(yml|yaml)(-.)'
}

_speedrun() {
    local -a subcommands
    subcommands=(
        'ls:one row per experiment directory'
        'diff:what differs between two runs'
        'show:config, lineage and provenance of a run'
        'mixins:installed speedrun distributions and mixins'
        'completion:print a shell completion script'
    )
    if (( CURRENT == 2 )); then
        _describe -t commands 'speedrun command' subcommands
        return
    fi
    local subcommand=$words[2]
    shift words
    (( CURRENT-- ))
    case $subcommand in
        ls) _arguments '--json[print a JSON list]' '(-r --reverse)'{-r,--reverse}'[newest first]' \
                '--depth[folder levels searched]:levels:' '*:directory:_files -/' ;;
        diff) _arguments '--json[print JSON]' '--config-only[compare the configurations only]' \
                ':run A:_speedrun_runs' ':run B:_speedrun_runs' ;;
        show) _arguments '--json[print JSON]' ':run:_speedrun_runs' ;;
        mixins) _arguments '--json[print JSON]' ;;
        completion) _arguments '*--python[command that starts experiments]:command:_command_names' \
                ':shell:(bash zsh)' ;;
    esac
}

typeset -gA _speedrun_python_original

_speedrun_python() {
    if [[ $PREFIX == --config.* ]] && (( $+commands[speedrun] )); then
        local -a candidates branches leaves
        candidates=(${(f)"$(command speedrun __complete config "$PREFIX" \
            "${(j: :)words[1,CURRENT-1]} " 2>/dev/null)"})
        if (( $#candidates )); then
            branches=(${(M)candidates:#*.})
            leaves=(${candidates:#*.})
            (( $#branches )) && compadd -Q -S '' -- $branches
            (( $#leaves )) && compadd -Q -- $leaves
            return 0
        fi
    fi
    local original=${_speedrun_python_original[${words[1]:t}]}
    if [[ -n $original && $original != _speedrun_python ]]; then
        $original "$@"
    else
        _default "$@"
    fi
}

for _speedrun_command in @COMMANDS@; do
    if [[ ${_comps[$_speedrun_command]} != _speedrun_python ]]; then
        _speedrun_python_original[$_speedrun_command]=${_comps[$_speedrun_command]}
    fi
    compdef _speedrun_python $_speedrun_command
done
unset _speedrun_command
compdef _speedrun speedrun
"""


def _check_commands(commands: Sequence[str]) -> list[str]:
    from .._errors import ArgumentError

    names = list(dict.fromkeys(commands))
    for name in names:
        if not _COMMAND_NAME.match(name):
            raise ArgumentError(
                f"--python expects a command name such as python3 or torchrun, got {name!r}"
            )
    return names


def bash_script(commands: Sequence[str] = ("python", "python3")) -> str:
    """The bash completion script (``speedrun completion bash``)."""
    return _BASH.replace("@COMMANDS@", " ".join(_check_commands(commands))).replace(
        "@SUBCOMMANDS@", " ".join(_SUBCOMMANDS)
    )


def zsh_script(commands: Sequence[str] = ("python", "python3")) -> str:
    """The zsh completion script (``speedrun completion zsh``)."""
    return _ZSH.replace("@COMMANDS@", " ".join(_check_commands(commands)))


# ------------------------------------------------------------------------------------------------
# config keys


def _split_line(line: str) -> list[str]:
    """The complete words of a command line typed up to the cursor (the current one dropped)."""
    for closing in ("", '"', "'"):
        try:
            words = shlex.split(line + closing)
            break
        except ValueError:
            continue
    else:
        words = line.split()
    if line and not line[-1].isspace() and words:
        words.pop()  # the word being completed
    return words


def _experiment_arguments(words: list[str]) -> list[str]:
    """``[script, *arguments]`` from ``python [options] script.py DIR ...`` (command first)."""
    rest = words[1:]
    for index, word in enumerate(rest):
        if word == "-m" and index + 1 < len(rest):
            return rest[index + 1 :]
        if word.endswith(".py") and not word.startswith("-"):
            return rest[index:]
    for index, word in enumerate(rest):
        if not word.startswith("-"):
            return rest[index:]
    return []


def _config_of(arguments: list[str]) -> dict[Any, Any] | None:
    """The configuration an experiment started with these arguments would read."""
    from .._errors import SpeedrunError
    from ..config._arguments import parse_arguments
    from ._inspection import load_config

    if not arguments:
        return None
    try:
        parsed = parse_arguments(arguments)
        flags, positionals = parsed.flags, parsed.positionals
    except SpeedrunError:
        flags, positionals = {}, []
    inherit, macro = flags.get("inherit"), flags.get("macro")
    sources = []
    if isinstance(inherit, str):
        from ..directory._layout import CONFIG_FILE_NAME, inherit_source

        try:
            sources.append(inherit_source(inherit, CONFIG_FILE_NAME))
        except SpeedrunError:
            pass
    if positionals:
        sources.append(os.path.join(positionals[0], "Configurations", "train_config.yml"))
    config = None
    for source in sources:
        try:
            config = load_config(source)
            break
        except (SpeedrunError, OSError):
            continue
    if isinstance(macro, str):
        from ..config._macro import _split_spec, merge_macro

        for path in _split_spec(macro):
            try:
                config = merge_macro(config or {}, load_config(os.path.expanduser(path)))
            except (SpeedrunError, OSError):
                continue
    return config


def _with_declared_keys(config: dict[Any, Any] | None) -> dict[Any, Any]:
    """``config`` plus every key core and the installed mixins declare (config values win)."""
    from ._keys import installed_config_keys

    merged: dict[Any, Any] = {}
    try:
        rows, _ = installed_config_keys()
    except Exception:
        rows = []
    for row in rows:
        *parents, last = str(row["path"]).split("/")
        node = merged
        for part in parents:
            child = node.get(part)
            node = child if isinstance(child, dict) else node.setdefault(part, {})
        node.setdefault(last, None)
    return _merge(merged, config or {})


def _merge(base: dict[Any, Any], over: dict[Any, Any]) -> dict[Any, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def config_key_candidates(current: str, line: str) -> list[str]:
    """The ``--config.a.b`` completions of ``current`` for the command line ``line``.

    ``line`` is the command typed up to the cursor, e.g.
    ``python train.py experiments/RUN-1 --inherit experiments/RUN-0 --config.tr``. Keys that
    hold a non-empty mapping end with ``.`` (completion continues with their keys).
    """
    if not current.startswith(_PREFIX):
        return []
    config = _config_of(_experiment_arguments(_split_line(line)))
    if not config:  # not an experiment's command line: leave it to the shell's other completion
        return []
    config = _with_declared_keys(config)
    *parents, last = current[len(_PREFIX) :].split(".")
    node: Any = config
    for part in parents:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and part.lstrip("-").isdigit() and int(part) in node:
            node = node[int(part)]
        else:
            return []
    if not isinstance(node, dict):
        return []
    candidates = []
    for key, value in node.items():
        name = str(key)
        if not name.startswith(last) or "." in name or any(ch.isspace() for ch in name):
            continue
        path = _PREFIX + ".".join([*parents, name])
        candidates.append(path + "." if isinstance(value, dict) and value else path)
    return sorted(candidates)


def complete(arguments: Sequence[str]) -> int:
    """``speedrun __complete config CURRENT LINE``: print the candidates, one per line."""
    if len(arguments) >= 2 and arguments[0] == "config":
        line = arguments[2] if len(arguments) > 2 else ""
        try:
            candidates = config_key_candidates(arguments[1], line)
        except Exception:
            candidates = []
        if candidates:
            print("\n".join(candidates))
        return 0
    return 2
