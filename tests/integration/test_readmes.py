"""The READMEs are the PyPI pages and the first thing users copy: their code must be true.

Rules for code blocks in ``README.md`` and ``packages/*/README.md``:

- ```` ```python ```` blocks are executed (in a fresh namespace whose ``__name__`` is not
  ``"__main__"``, in a scratch folder): imports, class definitions and module-level code must
  work as written. ```` ```yaml ```` blocks must parse with speedrun's YAML loader.
- A block that cannot run as written (a fragment, a call that needs a cluster or a data set)
  says so in its fence: ```` ```python notest ````. Other languages (``bash``, plain text) are
  shown, not run; core's command-line walk-through is run by its own test below.
- Signatures written in backticks (``log_histogram(tag, values, ...)``) name only parameters
  the method really has, so copied keyword calls work.
- Package READMEs link with absolute URLs (they are rendered on PyPI).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from speedrun.ext import loads_yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_READMES = sorted(ROOT.glob("packages/*/README.md"))
READMES = [ROOT / "README.md", *PACKAGE_READMES]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)
#: README -> the classes whose methods its backticked signatures describe.
DOCUMENTED = {
    "speedrun-tensorboard": ["speedrun.mixins.tensorboard:TensorboardMixin"],
    "speedrun-io": ["speedrun.mixins.io:IOMixin"],
    "speedrun-mpl": ["speedrun.mixins.mpl:MatplotlibMixin"],
    "speedrun-inferno": ["speedrun.mixins.inferno:InfernoMixin"],
    "speedrun-firelight": ["speedrun.mixins.firelight:FirelightMixin"],
    "speedrun-waiter": ["speedrun.mixins.waiter:WaiterMixin"],
    "speedrun-submitit": ["speedrun.mixins.submitit:SubmititMixin"],
    "speedrun-core": ["speedrun:BaseExperiment"],
}


def _blocks(path: Path) -> list[tuple[str, set[str], str, int]]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        info = match.group(1).split()
        language, flags = (info[0] if info else ""), set(info[1:])
        found.append((language, flags, match.group(2), text.count("\n", 0, match.start()) + 1))
    return found


def _cases(language: str) -> list[pytest.param]:
    return [
        pytest.param(code, id=f"{path.relative_to(ROOT)}:{line}")
        for path in READMES
        for lang, flags, code, line in _blocks(path)
        if lang == language and "notest" not in flags
    ]


def _name(readme: Path) -> str:
    return str(readme.relative_to(ROOT))


def test_the_readmes_have_code_blocks_to_check() -> None:
    assert len(_cases("python")) >= 10
    assert all(_blocks(path) for path in READMES)


@pytest.mark.parametrize("code", _cases("python"))
def test_python_blocks_run(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<README block>", "exec"), {"__name__": "readme_block"})


@pytest.mark.parametrize("code", _cases("yaml"))
def test_yaml_blocks_parse(code: str) -> None:
    assert isinstance(loads_yaml(code), (dict, list))


def _documented_signatures(readme: Path) -> list[tuple[str, list[str]]]:
    text = readme.read_text(encoding="utf-8")
    found = []
    for name, arguments in re.findall(r"`(\w+)\(([^`()]*)\)`", text):
        positional = [part.strip() for part in arguments.split(",") if "=" not in part]
        if any(part[:1] in "\"'0123456789[{-" for part in positional if part):
            continue  # a call with literal arguments (`print_image("x", v)`), not a signature
        parameters = []
        for argument in arguments.split(","):
            argument = argument.strip().split("=")[0].strip()
            if re.fullmatch(r"\*{0,2}[A-Za-z_]\w*", argument):
                parameters.append(argument)
        found.append((name, parameters))
    return found


@pytest.mark.parametrize(
    "readme", [path for path in PACKAGE_READMES if path.parent.name in DOCUMENTED], ids=_name
)
def test_documented_signatures_match_the_code(readme: Path) -> None:
    classes = []
    for spec in DOCUMENTED[readme.parent.name]:
        module, _, name = spec.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    wrong, checked = [], 0
    for method_name, documented in _documented_signatures(readme):
        owner = next((cls for cls in classes if callable(getattr(cls, method_name, None))), None)
        if owner is None:
            continue
        parameters = inspect.signature(getattr(owner, method_name)).parameters
        names = {name.lstrip("*") for name in parameters}
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        checked += 1
        for parameter in documented:
            bare = parameter.lstrip("*")
            if bare not in names and not (accepts_any and not parameter.startswith("*")):
                wrong.append(f"{method_name}({parameter}): the code has {sorted(names)}")
    assert wrong == []
    assert checked > 0 or readme.parent.name in {"speedrun-core", "speedrun-submitit"}


@pytest.mark.parametrize("readme", PACKAGE_READMES, ids=_name)
def test_package_readmes_link_absolutely(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    relative = [
        target
        for target in re.findall(r"\]\(([^)\s]+)\)", text)
        if not target.startswith(("https://", "http://", "#", "mailto:"))
    ]
    assert relative == [], "PyPI renders the README alone: link to https://github.com/..."


def test_core_readme_walk_through_runs(tmp_path: Path) -> None:
    """The landing page's experiment and its command lines, run as written."""
    blocks = _blocks(ROOT / "packages" / "speedrun-core" / "README.md")
    script = next(code for lang, flags, code, _ in blocks if lang == "python" and not flags)
    commands = next(
        code for lang, _, code, _ in blocks if lang == "bash" and "python train.py" in code
    )
    (tmp_path / "train.py").write_text(script, encoding="utf-8")
    speedrun = [sys.executable, "-m", "speedrun"]
    outputs = []
    for line in commands.strip().splitlines():
        words = shlex.split(line)
        argv = [sys.executable, *words[1:]] if words[0] == "python" else [*speedrun, *words[1:]]
        result = subprocess.run(
            argv,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        assert result.returncode == (1 if words[:2] == ["speedrun", "diff"] else 0), result.stderr
        outputs.append(result.stdout)
    assert outputs[0].startswith("step 100: weight") and outputs[2].startswith("step 200:")
    assert "experiments/RUN-1  finished  200   experiments/RUN-0" in outputs[3]
    assert "~ training/lr: 0.05 -> 0.2" in outputs[4]
