"""Shell completion: the generated scripts run in real bash (zsh: syntax, when installed)."""

import os
import shlex
import shutil
import stat
import subprocess
import sys

import pytest
from conftest import seed_core_keys_cache

from speedrun import BaseExperiment
from speedrun.cli._completion import (
    bash_script,
    complete,
    config_key_candidates,
    zsh_script,
)

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

# Completes the line typed so far like bash does on TAB: sets COMP_* and calls the function
# registered for the command. Prints the candidates, then "--".
HARNESS = r"""
complete_line() {
    COMP_LINE=$1; COMP_POINT=${#COMP_LINE}
    read -ra COMP_WORDS <<< "$COMP_LINE"
    [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    local spec fn
    spec=$(complete -p -- "${COMP_WORDS[0]}" 2>/dev/null) || { echo "<none>"; echo "--"; return; }
    fn=${spec##* -F }; fn=${fn%% *}
    COMPREPLY=()
    "$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    [[ ${#COMPREPLY[@]} -gt 0 ]] && printf '%s\n' "${COMPREPLY[@]}"
    echo "--"
}
"""


@pytest.fixture
def workspace(tmp_path):
    """A project folder with runs, a home folder, and `speedrun` on PATH for this Python."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "speedrun"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m speedrun "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "home").mkdir()
    project = tmp_path / "project"
    project.mkdir()
    run = BaseExperiment(project / "experiments" / "RUN-0")
    run.set("training/lr", 0.1).set("training/schedule/name", "cosine")
    run.set("training/epochs", 3).set("model/depth", 18).set("seed", 0).set("empty", {})
    run.dump_configuration()
    (project / "macro.yml").write_text("augment: {flip: true}\n")
    (project / "train.py").write_text("# an experiment script\n")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path / "home"),
        "LC_ALL": "C",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }  # the declared-keys cache
    seed_core_keys_cache(tmp_path / "cache")
    return project, env


def bash(workspace, body, *, before="", args=()):
    """Run ``body`` in a fresh bash that sourced ``speedrun completion bash``."""
    project, env = workspace
    script = subprocess.run(
        ["speedrun", "completion", "bash", *args],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (project.parent / "completion.bash").write_text(script)
    source = f"source {shlex.quote(str(project.parent / 'completion.bash'))}"
    program = f"{HARNESS}\n{before}\n{source}\n{body}"
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return result.stdout


def candidates(output):
    """The candidate lists printed by successive complete_line calls."""
    groups, current = [], []
    for line in output.splitlines():
        if line == "--":
            groups.append(sorted(current))
            current = []
        else:
            current.append(line)
    return groups


def test_speedrun_commands_options_and_directories(workspace):
    out = bash(
        workspace,
        "\n".join(
            f"complete_line {shlex.quote(line)}"
            for line in [
                "speedrun ",
                "speedrun sh",
                "speedrun diff --c",
                "speedrun ls experiments/",
                "speedrun completion ",
                "speedrun show --",
            ]
        ),
    )
    assert candidates(out) == [
        sorted(["ls", "diff", "show", "mixins", "completion", "--help", "--version"]),
        ["show"],
        ["--config-only"],
        ["experiments/RUN-0"],
        ["bash", "zsh"],
        ["--help", "--json"],
    ]


def test_config_keys_from_the_inherit_target_and_from_dir(workspace):
    out = bash(
        workspace,
        "\n".join(
            f"complete_line {shlex.quote(line)}"
            for line in [
                "python train.py experiments/RUN-1 --inherit experiments/RUN-0 --config.",
                "python train.py experiments/RUN-1 --inherit experiments/RUN-0 --config.tr",
                "python3 train.py experiments/RUN-1 --inherit experiments/RUN-0 --config.training.",
                "python3 train.py experiments/RUN-0 --config.training.schedule.n",
                (
                    "python -u train.py experiments/RUN-2 --inherit experiments/RUN-0/Configurations/"
                    "train_config.yml --macro macro.yml --config.a"
                ),
            ]
        ),
    )
    assert candidates(out) == [
        # speedrun/ and training/checkpoint_*: keys BaseExperiment declares (CONFIG_KEYS)
        [
            "--config.empty",
            "--config.model.",
            "--config.seed",
            "--config.speedrun.",
            "--config.training.",
        ],
        ["--config.training."],
        [
            "--config.training.checkpoint_async",
            "--config.training.checkpoint_every",
            "--config.training.checkpoint_keep",
            "--config.training.checkpoint_sharded",
            "--config.training.epochs",
            "--config.training.lr",
            "--config.training.schedule.",
        ],
        ["--config.training.schedule.name"],
        ["--config.augment."],
    ]


def test_other_completions_of_python_are_left_alone(workspace):
    before = """
_fake_python() { COMPREPLY=("fake:$2"); }
complete -o filenames -F _fake_python python
"""
    out = bash(
        workspace,
        before=before,
        body="""
complete -p python python3
complete_line "python tr"
complete_line "python -m pdb --"
complete_line "python train.py experiments/RUN-0 --config.nothing"
complete_line "python train.py nowhere --config."
complete_line "python3 train.py experiments/RUN-0 --he"
""",
    )
    lines = out.splitlines()
    assert lines[0] == "complete -o filenames -F _speedrun_python_complete python"
    assert lines[1] == "complete -o bashdefault -o default -F _speedrun_python_complete python3"
    assert candidates("\n".join(lines[2:])) == [
        ["fake:tr"],
        ["fake:--"],
        ["fake:--config.nothing"],
        ["fake:--config."],
        [],  # python3 had no completion: empty, so bash falls back to file names
    ]


def test_a_lazily_loaded_completion_is_found_and_kept(workspace):
    # bash-completion registers a default (-D) loader that defines a command's completion on
    # first use; the wrapper lets it load, then wraps what it registered.
    before = """
_late_python() { COMPREPLY=(late); }
_loader() { complete -F _late_python "$1"; return 124; }
complete -D -F _loader
"""
    out = bash(
        workspace,
        before=before,
        body="""
complete_line "python3 something"
complete -p python3
complete_line "python3 train.py experiments/RUN-0 --config.s"
complete_line "python3 again"
""",
    )
    lines = out.splitlines()
    assert lines[:2] == ["late", "--"]
    assert lines[2] == "complete -F _speedrun_python_complete python3"
    assert candidates("\n".join(lines[3:])) == [["--config.seed", "--config.speedrun."], ["late"]]


def test_sourcing_twice_does_not_wrap_twice(workspace):
    before = """
_fake_python() { COMPREPLY=(fake); }
complete -F _fake_python python
"""
    project, _ = workspace
    out = bash(
        workspace,
        before=before,
        body=f"""
source {shlex.quote(str(project.parent / "completion.bash"))}
complete -p python
complete_line "python x"
""",
    )
    assert out.splitlines() == ["complete -F _speedrun_python_complete python", "fake", "--"]


def test_only_the_chosen_commands_are_wrapped_and_no_rc_file_is_written(workspace):
    _, env = workspace
    out = bash(
        workspace,
        args=("--python", "torchrun"),
        body="""
complete -p python 2>/dev/null || echo "python: untouched"
complete_line "torchrun --nproc_per_node 2 train.py experiments/RUN-0 --config.m"
""",
    )
    assert out.splitlines() == ["python: untouched", "--config.model.", "--"]
    assert os.listdir(env["HOME"]) == []  # nothing was written to the user's shell files


def test_candidates_for_command_line_forms(workspace, monkeypatch):
    project, _ = workspace
    monkeypatch.chdir(project)
    keys = [
        "--config.empty",
        "--config.model.",
        "--config.seed",
        "--config.speedrun.",
        "--config.training.",
    ]
    assert config_key_candidates("--config.", "python train.py experiments/RUN-0 ") == keys
    assert config_key_candidates("--config.", "python -m pkg.train experiments/RUN-0 ") == keys
    assert (
        config_key_candidates(
            "--config.", "python x.py new --inherit=experiments/RUN-0 --config.seed 1 "
        )
        == keys
    )
    assert config_key_candidates("--config.m", "python x.py 'experiments/RUN-0' --config.m") == [
        "--config.model."
    ]
    assert config_key_candidates(
        "--config.model.d", "python t.py experiments/RUN-0 --config.model.d"
    ) == ["--config.model.depth"]
    assert config_key_candidates("--config.seed.", "python t.py experiments/RUN-0 --c") == []
    assert config_key_candidates("--config.", "python t.py nowhere ") == []
    assert config_key_candidates("--inherit", "python t.py experiments/RUN-0 ") == []


def test_folder_with_spaces_and_broken_configs(workspace, capsys, monkeypatch):
    project, _ = workspace
    monkeypatch.chdir(project)
    run = BaseExperiment(project / "my runs" / "RUN 1")
    run.set("lr", 0.1).dump_configuration()
    keys = ["--config.lr", "--config.speedrun.", "--config.training."]  # + BaseExperiment's
    assert config_key_candidates("--config.", "python t.py 'my runs/RUN 1' ") == keys
    assert config_key_candidates("--config.", 'python t.py "my runs/RUN 1" --config.') == keys
    (project / "bad.yml").write_text("lr: [1\n")
    assert complete(["config", "--config.", "python t.py x --inherit bad.yml "]) == 0
    assert capsys.readouterr() == ("", "")  # nothing, and no traceback


def test_command_names_are_checked():
    from speedrun import ArgumentError

    with pytest.raises(ArgumentError, match=r"--python expects a command name"):
        bash_script(["python; rm -rf ~"])
    assert "for _speedrun_command in python3 torchrun; do" in bash_script(["python3", "torchrun"])
    assert "for _speedrun_command in python python3; do" in zsh_script()


# Drives an interactive zsh through zsh/zpty: types each line and TAB, then a key bound to a
# widget that writes the edited line to a file.
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty -b z 'zsh -f -i'
zpty -w z 'PS1="> "; autoload -Uz compinit && compinit -u -D; source completion.zsh; _dump() { print -r -- "$BUFFER" > buffer.txt; BUFFER= }; zle -N _dump; bindkey "^X^B" _dump'
try() {
  rm -f buffer.txt
  zpty -w -n z "$1"$'\t'$'\C-x\C-b'
  local i
  for i in {1..400}; do [[ -s buffer.txt ]] && break; sleep 0.05; done
  print -r -- "<$(<buffer.txt)>"
}
try 'speedrun sh'
try 'python train.py experiments/RUN-0 --config.tr'
try 'python3 train.py experiments/RUN-1 --inherit experiments/RUN-0 --config.training.e'
try 'python train.py experiments/RUN-0 mac'
zpty -d z
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_speedrun_and_config_keys(workspace):
    project, env = workspace
    script = subprocess.run(
        ["speedrun", "completion", "zsh"],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (project / "completion.zsh").write_text(script)
    subprocess.run(["zsh", "-n", "completion.zsh"], cwd=project, check=True)
    (project / "driver.zsh").write_text(ZSH_DRIVER)
    result = subprocess.run(
        ["zsh", "-f", "driver.zsh"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.splitlines() == [
        "<speedrun show >",
        "<python train.py experiments/RUN-0 --config.training.>",
        (
            "<python3 train.py experiments/RUN-1 --inherit experiments/RUN-0 "
            "--config.training.epochs >"
        ),
        "<python train.py experiments/RUN-0 macro.yml >",  # python's own completion: files
    ], result.stderr
