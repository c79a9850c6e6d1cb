"""YAML loading and dumping for speedrun configurations.

speedrun's tags live on :class:`SpeedrunLoader` and :class:`SpeedrunDumper` only; PyYAML's
global loaders and dumpers are never touched. Loading is safe: plain YAML plus the tags

``!Add [a, b, ...]``
    sum of the numbers.
``!Mul [a, b, ...]``
    product of the numbers.
``!Sub [a, b, ...]``
    ``a - b - ...``.
``!Div [a, b, ...]``
    ``a / b / ...`` (true division).
``!NumpyArray [...]``
    ``numpy.array(...)`` (numpy is imported only when the tag is used).
``!TorchTensor [...]``
    ``torch.tensor(...)`` (torch is imported only when the tag is used).

Anything else, in particular ``!!python/...`` tags, is refused with a :class:`ConfigError`
naming the file and line; nothing is ever executed.

Beyond PyYAML's YAML 1.1 rules, exponent floats without a dot (``1e-3``, ``5E4``) load as
floats, as every ML researcher expects of a learning rate.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from functools import reduce
from typing import TYPE_CHECKING, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .._errors import ConfigError
from ..directory._fs import atomic_write_text

if TYPE_CHECKING:
    from typing import Any

    PathLike = str | os.PathLike[str]

__all__ = [
    "SpeedrunLoader",
    "SpeedrunDumper",
    "SPEEDRUN_TAGS",
    "load_yaml",
    "load_mapping",
    "loads_yaml",
    "dumps_yaml",
    "dump_yaml",
]

#: The tags a speedrun configuration may use on top of plain YAML.
SPEEDRUN_TAGS: tuple[str, ...] = ("!Add", "!Mul", "!Sub", "!Div", "!NumpyArray", "!TorchTensor")

_PYTHON_TAG_PREFIX = "tag:yaml.org,2002:python/"
_ALLOWED = "speedrun configs may only use plain YAML and the tags " + ", ".join(SPEEDRUN_TAGS)
_MISSING_FILE_HINT = (
    "check the path; if this is an experiment's configuration, create "
    "Configurations/train_config.yml in the experiment directory"
)
_SYNTAX_HINT = (
    "hint: indent with spaces (never tabs), put a space after every 'key:', and quote strings "
    "that contain ': ', ' #', or start with a special character such as '*', '&', '!', '@', '%'"
)

# YAML 1.1 (PyYAML) reads 1e-3 as a string; speedrun reads it as the float everyone means.
_EXPONENT_FLOAT = re.compile(
    r"^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+|[-+]?\.[0-9][0-9_]*[eE][-+]?[0-9]+)$"
)
_FLOAT_FIRST_CHARS = list("-+0123456789.")


# ----------------------------------------------------------------------------------------------
# Helpers shared by the loader and the dumper
# ----------------------------------------------------------------------------------------------


def _array_kind(value: Any) -> str | None:
    """Return ``"numpy"`` or ``"torch"`` for arrays and tensors, without importing either."""
    for klass in type(value).__mro__:
        module = klass.__module__
        if module == "numpy" and klass.__name__ == "ndarray":
            return "numpy"
        if module == "torch" and klass.__name__ == "Tensor":
            return "torch"
    return None


def _is_number(value: Any) -> bool:
    """Numbers the arithmetic tags accept: int, float (not bool), numpy arrays, torch tensors."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or _array_kind(value) is not None


def _location(source: str, mark: Any) -> str:
    if mark is None:
        return source
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# Loader
# ----------------------------------------------------------------------------------------------

if TYPE_CHECKING:  # the C classes offer the same interface as the pure-Python ones
    _LoaderBase = yaml.SafeLoader
    _DumperBase = yaml.SafeDumper
else:
    _LoaderBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    _DumperBase = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _SpeedrunConstructorMixin:
    """Error reporting shared by the C-accelerated and the pure-Python loader."""

    #: Name of the document in error messages; :func:`loads_yaml` sets it per instance.
    speedrun_source: str | None = None

    def _speedrun_error(self, node: Node, message: str) -> ConfigError:
        mark = node.start_mark
        source = self.speedrun_source or getattr(mark, "name", None) or "<string>"
        return ConfigError(f"{_location(source, mark)}: {message}")

    def construct_undefined(self, node: Node) -> Any:
        tag = node.tag
        prefix = "tag:yaml.org,2002:"
        shown = "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag
        raise self._speedrun_error(
            node,
            f"unknown tag {shown!r}; {_ALLOWED}. Remove the tag or replace it with one of these.",
        )

    def construct_python_tag(self, suffix: str, node: Node) -> Any:
        raise self._speedrun_error(
            node,
            f"refused the tag '!!python/{suffix}': {_ALLOWED}. Python tags can run arbitrary "
            "code, so speedrun never loads them; write the value as plain YAML instead.",
        )


def _construct_operands(loader: Any, node: Node, tag: str, minimum: int, example: str) -> list[Any]:
    expected = (
        f"{tag} expects a sequence of {'one' if minimum == 1 else 'two'} or more numbers, "
        f"e.g. `{example}`"
    )
    if not isinstance(node, SequenceNode):
        kind = "a mapping" if isinstance(node, MappingNode) else f"the scalar {node.value!r}"
        raise loader._speedrun_error(node, f"{expected}; got {kind}. Fix the tag's arguments.")
    operands: list[Any] = loader.construct_sequence(node, deep=True)
    if len(operands) < minimum:
        raise loader._speedrun_error(
            node, f"{expected}; got {len(operands)} element(s). Fix the tag's arguments."
        )
    for operand in operands:
        if not _is_number(operand):
            raise loader._speedrun_error(
                node,
                f"{expected}; got the {type(operand).__name__} {_short(operand)} among "
                f"{_short(operands)}. Fix the tag's arguments.",
            )
    return operands


def _arithmetic(
    tag: str, minimum: int, example: str, operation: Callable[[Any, Any], Any]
) -> Callable[[Any, Node], Any]:
    def construct(loader: Any, node: Node) -> Any:
        operands = _construct_operands(loader, node, tag, minimum, example)
        try:
            return reduce(operation, operands)
        except ArithmeticError as error:
            raise loader._speedrun_error(
                node, f"{tag} {_short(operands)} cannot be computed: {error}. Fix the operands."
            ) from None

    construct.__name__ = f"construct_{tag[1:].lower()}"
    return construct


def _construct_array_data(loader: Any, node: Node, tag: str) -> Any:
    if isinstance(node, SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, ScalarNode):  # a 0-d array: `!NumpyArray 3`
        # PyYAML's pure emitter single-quotes explicitly tagged scalars (`!NumpyArray '3'`), so
        # only double quotes mark a string; the dumper double-quotes 0-d string arrays.
        if node.style != '"':
            implicit_tag = loader.resolve(ScalarNode, node.value, (True, False))
        else:
            implicit_tag = "tag:yaml.org,2002:str"
        plain = ScalarNode(implicit_tag, node.value, node.start_mark, node.end_mark, node.style)
        return loader.construct_object(plain, deep=True)
    raise loader._speedrun_error(
        node,
        f"{tag} expects a (nested) sequence of numbers, e.g. `{tag} [[1, 2], [3, 4]]`; "
        "got a mapping. Fix the tag's arguments.",
    )


def _construct_numpy_array(loader: Any, node: Node) -> Any:
    data = _construct_array_data(loader, node, "!NumpyArray")
    where = _location(loader.speedrun_source or "<string>", node.start_mark)
    from .._require import require  # here: the tags are rare, start-up is benchmarked

    numpy = require("numpy", feature=f"{where}: !NumpyArray", install="pip install numpy")
    try:
        return numpy.array(data)
    except (ValueError, TypeError) as error:
        raise loader._speedrun_error(
            node,
            f"!NumpyArray expects a rectangular (nested) sequence of numbers; got "
            f"{_short(data)}, which numpy refuses: {error}",
        ) from None


def _construct_torch_tensor(loader: Any, node: Node) -> Any:
    data = _construct_array_data(loader, node, "!TorchTensor")
    where = _location(loader.speedrun_source or "<string>", node.start_mark)
    from .._require import require

    torch = require("torch", feature=f"{where}: !TorchTensor", install="pip install torch")
    try:
        return torch.tensor(data)
    except (ValueError, TypeError, RuntimeError) as error:
        raise loader._speedrun_error(
            node,
            f"!TorchTensor expects a rectangular (nested) sequence of numbers; got "
            f"{_short(data)}, which torch refuses: {error}",
        ) from None


class SpeedrunLoader(_SpeedrunConstructorMixin, _LoaderBase):
    """PyYAML's safe loader (C-accelerated when available) plus speedrun's tags.

    Use :func:`loads_yaml` / :func:`load_yaml` rather than this class directly: they add the
    file name to error messages and turn every YAML error into a :class:`ConfigError`.
    """


class _PureSpeedrunLoader(_SpeedrunConstructorMixin, yaml.SafeLoader):
    """The same loader on the pure-Python base (used where libyaml is missing, and in tests)."""


def _register_loader(loader: Any) -> None:
    loader.add_constructor("!Add", _arithmetic("!Add", 1, "!Add [1, 2]", lambda a, b: a + b))
    loader.add_constructor("!Mul", _arithmetic("!Mul", 1, "!Mul [2, 3]", lambda a, b: a * b))
    loader.add_constructor("!Sub", _arithmetic("!Sub", 2, "!Sub [5, 3]", lambda a, b: a - b))
    loader.add_constructor("!Div", _arithmetic("!Div", 2, "!Div [6, 3]", lambda a, b: a / b))
    loader.add_constructor("!NumpyArray", _construct_numpy_array)
    loader.add_constructor("!TorchTensor", _construct_torch_tensor)
    loader.add_constructor(None, loader.construct_undefined)
    loader.add_multi_constructor(_PYTHON_TAG_PREFIX, loader.construct_python_tag)
    loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, _FLOAT_FIRST_CHARS)


# ----------------------------------------------------------------------------------------------
# Dumper
# ----------------------------------------------------------------------------------------------


class _SpeedrunRepresenterMixin:
    """Representation rules shared by the C-accelerated and the pure-Python dumper."""

    def ignore_aliases(self, data: Any) -> bool:
        # A configuration is read by people: repeat shared values instead of writing &id001.
        return True

    def represent_plain_dict(self, data: Any) -> Node:
        return self.represent_dict(data)  # type: ignore[attr-defined, no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into

    def represent_plain_list(self, data: Any) -> Node:
        return self.represent_list(list(data))  # type: ignore[attr-defined, no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into

    def represent_plain_str(self, data: Any) -> Node:
        return self.represent_str(str(data))  # type: ignore[attr-defined, no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into

    def represent_plain_int(self, data: Any) -> Node:
        return self.represent_int(int(data))  # type: ignore[attr-defined, no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into

    def represent_plain_float(self, data: Any) -> Node:
        return self.represent_float(float(data))  # type: ignore[attr-defined, no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into

    def _represent_array(self, tag: str, data: Any) -> Node:
        if _array_kind(data) == "torch":
            data = data.detach().cpu()
        value = data.tolist()
        if isinstance(value, list):
            represent_sequence = self.represent_sequence  # type: ignore[attr-defined]  # the mixin's methods come from yaml's Representer it is mixed into
            return represent_sequence(tag, value, flow_style=True)  # type: ignore[no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into
        node = self.represent_data(value)  # type: ignore[attr-defined]  # the mixin's methods come from yaml's Representer it is mixed into
        node.tag = tag
        if isinstance(value, str):
            node.style = '"'  # a 0-d string array must not come back as a number
        return node  # type: ignore[no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into

    def represent_undefined(self, data: Any) -> Node:
        kind = _array_kind(data)
        if kind == "numpy":
            return self._represent_array("!NumpyArray", data)
        if kind == "torch":
            return self._represent_array("!TorchTensor", data)
        if type(data).__module__ == "numpy" and hasattr(data, "item"):  # numpy.float32(0.1) & co
            return self.represent_data(data.item())  # type: ignore[attr-defined, no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into
        if isinstance(data, os.PathLike):
            return self.represent_str(os.fspath(data))  # type: ignore[attr-defined, no-any-return]  # the mixin's methods come from yaml's Representer it is mixed into
        raise yaml.representer.RepresenterError("cannot represent an object", data)


class SpeedrunDumper(_SpeedrunRepresenterMixin, _DumperBase):  # type: ignore[misc]  # speedrun represents what SafeRepresenter refuses (stubbed as Never)
    """PyYAML's safe dumper (C-accelerated when available) that writes speedrun configs.

    Dict subclasses become plain mappings, tuples plain sequences, numpy arrays
    ``!NumpyArray [...]`` and torch tensors ``!TorchTensor [...]``. :func:`dumps_yaml` adds the
    house style: key order preserved, block style.
    """


class _PureSpeedrunDumper(_SpeedrunRepresenterMixin, yaml.SafeDumper):  # type: ignore[misc]  # speedrun represents what SafeRepresenter refuses (stubbed as Never)
    """The same dumper on the pure-Python base (used where libyaml is missing, and in tests)."""

    def choose_scalar_style(self) -> str:
        # Write 0-d arrays as `!NumpyArray 3`, like libyaml does, not `!NumpyArray '3'`.
        # only ever called while emitting a scalar
        event = cast("yaml.ScalarEvent", self.event)
        if event.tag in ("!NumpyArray", "!TorchTensor") and not event.style:
            if self.analysis is None:
                self.analysis = self.analyze_scalar(event.value)
            analysis = self.analysis
            allow_plain = (
                analysis.allow_flow_plain if self.flow_level else analysis.allow_block_plain
            )
            if allow_plain and not analysis.empty and not analysis.multiline:
                return ""
        return super().choose_scalar_style()


def _register_dumper(dumper: Any) -> None:
    dumper.add_multi_representer(dict, dumper.represent_plain_dict)
    dumper.add_multi_representer(list, dumper.represent_plain_list)
    dumper.add_multi_representer(tuple, dumper.represent_plain_list)
    dumper.add_multi_representer(str, dumper.represent_plain_str)
    dumper.add_multi_representer(int, dumper.represent_plain_int)
    dumper.add_multi_representer(float, dumper.represent_plain_float)
    dumper.add_representer(tuple, dumper.represent_plain_list)
    dumper.add_representer(None, dumper.represent_undefined)
    dumper.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, _FLOAT_FIRST_CHARS)


for _loader in (SpeedrunLoader, _PureSpeedrunLoader):
    _register_loader(_loader)
for _dumper in (SpeedrunDumper, _PureSpeedrunDumper):
    _register_dumper(_dumper)
del _loader, _dumper


# ----------------------------------------------------------------------------------------------
# Functions
# ----------------------------------------------------------------------------------------------


def _snippet(text: str | bytes, mark: Any) -> str:
    """The offending line with a caret under the column, or "" when unavailable."""
    if mark is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if not 0 <= mark.line < len(lines):
        return ""
    line = lines[mark.line].replace("\t", " ")
    return f"\n    {line}\n    {' ' * mark.column}^"


MAX_EXPANDED_NODES = 1_000_000
"""The most values a configuration may hold once its YAML aliases (``*name``) are expanded."""


def _check_expansion(node: Node, source: str) -> None:
    """Refuse alias bombs ("billion laughs") and documents that contain themselves.

    Loading shares aliased nodes, so a 550-byte file loads at once, but every dump (and a
    ``speedrun diff``) would expand it into billions of values. Counted on the node graph, with
    each distinct node's expanded size computed once: linear in the file's size.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if done:
            on_path.discard(key)
            children = _children(current)
            total = 1 + sum(sizes[id(child)] for child in children)
            if total > MAX_EXPANDED_NODES:
                raise ConfigError(
                    f"{source}: refusing this configuration: its YAML aliases (*name) expand to "
                    f"more than {MAX_EXPANDED_NODES:,} values (an alias bomb?). Write the "
                    "values out, or use fewer nested aliases."
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            mark = current.start_mark
            raise ConfigError(
                f"{_location(source, mark)}: refusing this configuration: an alias refers to "
                "a value that contains it (it contains itself), which cannot be written back "
                "or compared. Use plain, acyclic values."
            )
        on_path.add(key)
        stack.append((current, True))
        stack.extend((child, False) for child in _children(current) if id(child) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _load(text: str | bytes, source: str, loader_class: type) -> Any:
    loader = loader_class(text)
    loader.speedrun_source = source
    try:
        node = loader.get_single_node()
        if node is None:  # an empty document (or only comments)
            return {}
        _check_expansion(node, source)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(
            f"{source}: refusing this configuration: it is nested too deeply to read. Flatten it."
        ) from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{source}: could not read a value: {str(error)[:200]}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        parts = [error.problem or "malformed YAML"]
        if error.context:
            context_mark = error.context_mark
            where = ""
            if context_mark is not None and (
                mark is None or (context_mark.line, context_mark.column) != (mark.line, mark.column)
            ):
                where = f" (line {context_mark.line + 1}, column {context_mark.column + 1})"
            parts.append(f"{error.context}{where}")
        message = "; ".join(parts)
        raise ConfigError(
            f"{_location(source, mark)}: could not parse YAML: {message}"
            f"{_snippet(text, mark)}\n{_SYNTAX_HINT}"
        ) from None
    except yaml.YAMLError as error:  # e.g. a reader error without position
        raise ConfigError(f"{source}: could not read YAML: {error}\n{_SYNTAX_HINT}") from None
    finally:
        loader.dispose()


def loads_yaml(text: str | bytes, source: str = "<string>") -> Any:
    """Parse a YAML document with :class:`SpeedrunLoader`.

    Parameters
    ----------
    text
        The document. An empty document (or one holding only comments) gives ``{}``.
    source
        Name used in error messages, usually the file path.

    Returns
    -------
    Any
        The loaded value (usually a ``dict``).

    Raises
    ------
    ConfigError
        Malformed YAML (message ``source:line:column: ...``), a refused or unknown tag, or
        bad tag arguments.
    """
    return _load(text, source, SpeedrunLoader)


def load_yaml(path: PathLike) -> Any:
    """Load the YAML file at ``path`` with :class:`SpeedrunLoader` (see :func:`loads_yaml`).

    Raises
    ------
    ConfigError
        The file is missing or unreadable, or its content is refused.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {name!r} does not exist "
            f"(looked in {os.path.abspath(name)!r}); {_MISSING_FILE_HINT}"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"expected a YAML file at {name!r}, found a folder; pass the path of the .yml file "
            "inside it (e.g. Configurations/train_config.yml)"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"cannot read configuration file {name!r}: {error.strerror or error}; "
            "check the file's permissions"
        ) from None
    return _load(data, name, SpeedrunLoader)


def _describe(value: Any) -> str:
    if value is None:
        return "null (an explicit 'null' or '~')"
    kind = {list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
        type(value), type(value).__name__
    )
    return f"a {kind} ({_short(value)})"


def load_mapping(path: PathLike) -> dict[Any, Any]:
    """Load the YAML file at ``path`` and check that its top level is a mapping.

    An empty file gives ``{}``.

    Raises
    ------
    ConfigError
        As :func:`load_yaml`, or when the top level is not a mapping.
    """
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping at the top of {os.fspath(path)}, got {_describe(data)}; "
            "write the configuration as 'key: value' lines starting in the first column"
        )
    return data


def _find_unrepresentable(data: Any, path: str = "") -> tuple[str, Any] | None:
    """Locate the first value the dumper cannot write (only called after a failure)."""
    if isinstance(data, dict):
        for key, value in data.items():
            found = _find_unrepresentable(key, f"{path}/<key {key!r}>".lstrip("/"))
            if found is None:
                found = _find_unrepresentable(value, f"{path}/{key}".lstrip("/"))
            if found is not None:
                return found
        return None
    if isinstance(data, (list, tuple, set, frozenset)):
        for index, value in enumerate(data):
            found = _find_unrepresentable(value, f"{path}/{index}".lstrip("/"))
            if found is not None:
                return found
        return None
    try:
        yaml.dump(data, Dumper=_PureSpeedrunDumper)
    except yaml.representer.RepresenterError:
        return path or "(top level)", data
    return None


def dumps_yaml(data: Any) -> str:
    """Write ``data`` as YAML with :class:`SpeedrunDumper`: key order kept, block style.

    ``loads_yaml(dumps_yaml(x)) == x`` for data built from dicts, lists, tuples (read back
    as lists), strings, numbers, booleans, ``None``, dates, numpy arrays and torch tensors.

    Raises
    ------
    ConfigError
        ``data`` holds a value YAML cannot represent (the message names its key path).
    """
    try:
        return yaml.dump(
            data,
            Dumper=SpeedrunDumper,
            default_flow_style=False,
            sort_keys=False,
            allow_unicode=True,
        )
    except yaml.representer.RepresenterError:
        found = _find_unrepresentable(data)
        where, value = found if found is not None else ("(unknown)", data)
        raise ConfigError(
            f"cannot write {type(value).__module__}.{type(value).__qualname__} "
            f"{_short(value)} at {where!r} to YAML: expected plain data (dict, list, tuple, str, "
            "int, float, bool, None, dates, numpy arrays, torch tensors); convert the value "
            "(e.g. str(value)) before storing it in the configuration"
        ) from None
    except RecursionError:
        raise ConfigError(
            "cannot write the configuration to YAML: it contains itself (a reference cycle) or "
            "is nested too deeply; store plain, acyclic data"
        ) from None


def dump_yaml(data: Any, path: PathLike) -> None:
    """Write ``data`` to ``path`` as YAML, atomically (the old file survives any failure)."""
    text = dumps_yaml(data)  # serialise first: a bad value must not touch the file
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            errno.ENOENT,
            f"cannot write {os.fspath(path)!r}: its folder {folder!r} does not exist; create it "
            "first (setting an experiment directory creates Configurations/)",
            folder,
        )
    atomic_write_text(path, text)
