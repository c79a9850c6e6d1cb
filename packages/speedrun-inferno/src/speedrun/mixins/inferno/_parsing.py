"""Objects from configuration: ``{ClassName: {kwargs}}`` mappings and ``ParsingMixin``.

A class is named by a dotted path (``torch.nn.MSELoss``) or by a name looked up in a list of
modules (``MSELoss`` with ``import_from=['torch.nn']``). Keyword arguments may hold ``args``
(positional arguments), ``import_from`` (extra modules to look in) and ``noargs`` (call the
class without arguments), as in the original speedrun.
"""

from __future__ import annotations

import copy
import os
import pydoc
import types
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from speedrun import ConfigError
from speedrun.ext import ConfigKey

if TYPE_CHECKING:
    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["ParsingMixin", "create_instance", "get_single_key_value_pair", "locate"]


def _module_name(location: str | types.ModuleType) -> str:
    return location.__name__ if isinstance(location, types.ModuleType) else str(location)


def _as_list(import_from: Any) -> list[str]:
    if import_from is None:
        return []
    if isinstance(import_from, (str, types.ModuleType)):
        return [_module_name(import_from)]
    names: list[str] = []
    for item in import_from:
        names.extend(_as_list(item))
    return names


def locate(path: str, import_from: Any = None, ensure_exist: bool = True) -> Any:
    """The object at dotted ``path``, looked up inside each of ``import_from`` first.

    Parameters
    ----------
    path : str
        ``'MSELoss'``, ``'nn.MSELoss'`` or ``'torch.nn.MSELoss'``.
    import_from : str or module or list of them, optional
        Modules to try as prefixes, in order; the bare ``path`` is tried last.
    ensure_exist : bool
        Raise :class:`~speedrun.ConfigError` if nothing is found (else return ``None``).
    """
    if not isinstance(path, str) or not path:
        raise ConfigError(f"expected a class or function name (a non-empty string), got {path!r}")
    modules = (
        [import_from]
        if isinstance(import_from, types.ModuleType)
        else (
            [item for item in import_from if isinstance(item, types.ModuleType)]
            if isinstance(import_from, (list, tuple))
            else []
        )
    )
    for module in modules:  # module objects: look inside them without re-importing by name
        found: Any = module
        for part in path.split("."):
            found = getattr(found, part, None)
            if found is None:
                break
        if found is not None:
            return found
    bases = _as_list(import_from)
    for base in [*bases, None]:
        candidate = path if base is None else f"{base}.{path}"
        found = pydoc.locate(candidate)
        if found is not None:
            return found
    if ensure_exist:
        where = f" in {', '.join(bases)} or" if bases else ""
        raise ConfigError(
            f"could not locate {path!r}{where} as a dotted path: expected an "
            f"importable name such as 'torch.nn.MSELoss'. Fix the name, or add the "
            f"module that defines it to import_from"
        )
    return None


def get_single_key_value_pair(mapping: Any, where: str = "config") -> tuple[Any, Any]:
    """Key and value of a one-entry mapping (``{ClassName: kwargs}``)."""
    if not isinstance(mapping, Mapping) or len(mapping) != 1:
        raise ConfigError(
            f"{where}: expected a mapping with exactly one entry "
            f"{{ClassName: {{keyword: value}}}}, got {mapping!r}"
        )
    return next(iter(mapping.items()))


def create_instance(class_dict: Any, import_from: Any = None, where: str = "config") -> Any:
    """Instantiate ``{ClassName: {kwargs}}``; the configuration is not modified.

    ``kwargs`` may be empty or ``None``, and may hold ``args`` (a list of positional
    arguments), ``import_from`` (modules to look the class up in first) and ``noargs``
    (call without any argument).
    """
    name, kwargs = get_single_key_value_pair(class_dict, where)
    kwargs = {} if kwargs is None else copy.deepcopy(kwargs)
    if not isinstance(kwargs, Mapping):
        raise ConfigError(
            f"{where}/{name}: expected a mapping of keyword arguments, got {kwargs!r}"
        )
    kwargs = dict(kwargs)
    extra = kwargs.pop("import_from", None)
    locations = [*_as_list(extra), *_as_list(import_from)]
    args = kwargs.pop("args", [])
    if not isinstance(args, (list, tuple)):
        raise ConfigError(
            f"{where}/{name}/args: expected a list of positional arguments, got {args!r}"
        )
    target = locate(name, locations)
    if not callable(target):
        raise ConfigError(
            f"{where}: {name!r} is a {type(target).__name__}, expected a class or function to call"
        )
    if "noargs" in kwargs:
        return target()
    try:
        return target(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"{where}: calling {name}(*{list(args)!r}, **{kwargs!r}) failed: "
            f"{exc}. Fix the arguments in the configuration"
        ) from exc


def _name_and_kwargs(value: Any, kwargs: Any, where: str) -> dict[str, Any]:
    """``{Name: kwargs}`` from the original speedrun's ``Name`` + ``<key>_kwargs`` form.

    ``value`` may also be today's ``{Name: kwargs}``: then its own kwargs win over ``kwargs``
    (a warning names the ignored key).
    """
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigError(
            f"{where}_kwargs: expected a mapping of keyword arguments, got {kwargs!r}"
        )
    if isinstance(value, str):
        return {value: dict(kwargs or {})}
    name, own = get_single_key_value_pair(value, where)
    if kwargs is not None:
        warnings.warn(
            f"{where} is given as {{{name}: ...}} and {where}_kwargs is set too: the "
            f"keyword arguments inside {where} are used, {where}_kwargs is ignored",
            stacklevel=4,
        )
    return {name: own}


class ParsingMixin(_Base):
    """Build the model, criterion, metric and data loaders from the configuration.

    Configuration keys: ``model`` (``{Class: kwargs}``; ``loadfrom`` in the kwargs loads
    weights), ``criterion``, ``metric`` (optional; both ``{Class: kwargs}``, or the original
    speedrun's ``trainer/criterion: Name`` with ``trainer/criterion_kwargs``), ``loader`` and
    ``val_loader`` (``DataLoader`` keywords, with ``dataset: {Class: kwargs}``). Override the ``build_*``
    methods for anything harder to express in YAML; each returns the object.
    """

    CONFIG_KEYS: ClassVar[tuple[ConfigKey, ...]] = (
        ConfigKey(
            "model",
            None,
            "The model as {ModelClass: kwargs}; loadfrom in the kwargs loads saved weights.",
            kinds=(dict, type(None)),
        ),
        ConfigKey(
            "criterion",
            None,
            "The loss as {LossClass: kwargs}; wins over trainer/criterion.",
            kinds=(dict, type(None)),
        ),
        ConfigKey(
            "metric",
            None,
            "The metric as {MetricClass: kwargs} (optional); wins over trainer/metric.",
            kinds=(dict, type(None)),
        ),
        ConfigKey(
            "trainer/criterion",
            None,
            "The original speedrun's form of the loss: a class "
            "name (with trainer/criterion_kwargs) or {LossClass: kwargs}.",
            kinds=(str, dict, type(None)),
        ),
        ConfigKey(
            "trainer/criterion_kwargs",
            None,
            "Keyword arguments of trainer/criterion.",
            kinds=(dict, type(None)),
        ),
        ConfigKey(
            "trainer/metric",
            None,
            "The original speedrun's form of the metric: a class "
            "name (with trainer/metric_kwargs) or {MetricClass: kwargs}.",
            kinds=(str, dict, type(None)),
        ),
        ConfigKey(
            "trainer/metric_kwargs",
            None,
            "Keyword arguments of trainer/metric.",
            kinds=(dict, type(None)),
        ),
        ConfigKey(
            "loader",
            None,
            "DataLoader keywords of the training data, with dataset: {DatasetClass: kwargs}.",
            kinds=(dict, type(None)),
        ),
        ConfigKey(
            "val_loader",
            None,
            "DataLoader keywords of the validation data (optional), "
            "with dataset: {DatasetClass: kwargs}.",
            kinds=(dict, type(None)),
        ),
    )

    MODEL_LOCATIONS: list[Any] = []
    DATASET_LOCATIONS: list[Any] = []
    CRITERION_LOCATIONS: list[Any] = ["torch.nn", "inferno.extensions.criteria"]
    METRIC_LOCATIONS: list[Any] = ["inferno.extensions.metrics"]

    def build_model(self, model_dict: Any = None) -> Any:
        """The model from ``model_dict`` (a mapping, or a config path; default ``'model'``)."""
        import torch

        where = "model"
        if model_dict is None:
            model_dict = self.config_value("model")
        elif isinstance(model_dict, str):
            where, model_dict = model_dict, self.get(model_dict)
        if model_dict is None:
            raise ConfigError(
                f"no model configured: expected '{where}: {{ModelClass: "
                f"{{kwargs}}}}' in the configuration, or override build_model()"
            )
        name, kwargs = get_single_key_value_pair(model_dict, where)
        kwargs = dict(kwargs or {})
        load_from = kwargs.pop("loadfrom", None)
        model = create_instance({name: kwargs}, self.MODEL_LOCATIONS, where)
        if load_from is not None:
            if not os.path.isfile(load_from):
                raise ConfigError(
                    f"{where}/{name}/loadfrom: expected a saved model or inferno "
                    f"checkpoint file, got {load_from!r}, which does not exist"
                )
            loaded = torch.load(load_from, map_location="cpu", weights_only=False)
            if isinstance(loaded, Mapping) and "_model" in loaded:
                loaded = loaded["_model"]
            state = loaded.state_dict() if isinstance(loaded, torch.nn.Module) else loaded
            model.load_state_dict(state)
        return model

    @property
    def model(self) -> Any:
        """The model, built by :meth:`build_model` on first use."""
        if getattr(self, "_model", None) is None:
            model = self.build_model()
            if model is None:
                raise ConfigError("build_model() returned None: expected a torch.nn.Module")
            self._model = model
        return self._model

    def _build_loader(self, key: str) -> Any:
        from torch.utils.data import DataLoader

        config = self.config_value(key)
        if config is None:
            return None
        if not isinstance(config, Mapping) or "dataset" not in config:
            raise ConfigError(
                f"{key}: expected DataLoader keywords with a 'dataset: "
                f"{{DatasetClass: {{kwargs}}}}' entry, got {config!r}"
            )
        kwargs = copy.deepcopy(dict(config))
        kwargs["dataset"] = create_instance(
            kwargs["dataset"], self.DATASET_LOCATIONS, f"{key}/dataset"
        )
        try:
            return DataLoader(**kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"{key}: DataLoader refused the keywords "
                f"{sorted(k for k in kwargs if k != 'dataset')}: {exc}"
            ) from exc

    def build_train_loader(self) -> Any:
        """The training ``DataLoader`` from the ``loader`` config (override for custom data)."""
        loader = self._build_loader("loader")
        if loader is None:
            raise ConfigError(
                "no training data configured: expected 'loader: {dataset: "
                "{DatasetClass: {...}}, batch_size: ...}' in the configuration, "
                "or override build_train_loader()"
            )
        return loader

    def build_val_loader(self) -> Any:
        """The validation ``DataLoader`` from ``val_loader`` (``None`` if not configured)."""
        return self._build_loader("val_loader")

    def build_criterion(self) -> Any:
        """The loss from ``criterion: {MSELoss: {}}``, or the original speedrun's
        ``trainer/criterion: MSELoss`` (+ ``trainer/criterion_kwargs``).

        When both are given, the top-level ``criterion`` wins (with a warning naming the
        ignored key).
        """
        config = self._named_object_config("criterion")
        if config is None:
            raise ConfigError(
                "no criterion configured: expected 'criterion: {LossClass: "
                "{kwargs}}' (e.g. {MSELoss: {}}) or 'trainer/criterion: "
                "LossClass', or override build_criterion()"
            )
        return create_instance(config, self.CRITERION_LOCATIONS, "criterion")

    def build_metric(self) -> Any:
        """The metric from ``metric: {Name: {}}`` or ``trainer/metric: Name`` (+
        ``trainer/metric_kwargs``), or ``None``; the top-level key wins when both are given."""
        config = self._named_object_config("metric")
        if config is None:
            return None
        return create_instance(config, self.METRIC_LOCATIONS, "metric")

    def _named_object_config(self, key: str) -> Any:
        """``{Name: kwargs}`` for ``key`` from its two accepted forms (see build_criterion)."""
        config = self.config_value(key)
        legacy = self.config_value(f"trainer/{key}")
        legacy_kwargs = self.config_value(f"trainer/{key}_kwargs")
        if config is not None:
            if legacy is not None or legacy_kwargs is not None:
                warnings.warn(
                    f"both '{key}' and 'trainer/{key}' are configured: '{key}' is used, "
                    f"'trainer/{key}' (and '{key}_kwargs') ignored",
                    stacklevel=3,
                )
            return config
        if legacy is None:
            if legacy_kwargs is not None:
                raise ConfigError(
                    f"trainer/{key}_kwargs is set but trainer/{key} is not: "
                    f"expected 'trainer/{key}: ClassName' next to it"
                )
            return None
        return _name_and_kwargs(legacy, legacy_kwargs, f"trainer/{key}")

    @property
    def criterion(self) -> Any:
        """The loss, built by :meth:`build_criterion` on first use."""
        if getattr(self, "_criterion", None) is None:
            self._criterion = self.build_criterion()
        return self._criterion

    @property
    def metric(self) -> Any:
        """The metric (or ``None``), built by :meth:`build_metric` on first use."""
        if not hasattr(self, "_metric"):
            self._metric = self.build_metric()
        return self._metric
