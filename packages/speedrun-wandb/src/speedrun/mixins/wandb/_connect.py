"""Starting a W&B run without hanging a job on the network.

``online`` runs first check, within ``wandb/init_timeout`` seconds, that the W&B server answers
HTTP, then call ``wandb.init`` with that same timeout (and ``quiet``, which skips W&B's
extra user look-up after login, an unbounded ~10 s of retries when the server is down). When
either fails, the run continues offline with a warning (``wandb/on_init_failure: offline``, the
default) or stops with :class:`WandBInitError` (``error``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from speedrun import ConfigError, SpeedrunError
from speedrun.ext import require

__all__ = [
    "MODES",
    "WandBInitError",
    "base_url",
    "check_reachable",
    "load_wandb",
    "resolve_mode",
    "start_run",
]

MODES = ("online", "offline", "disabled")
_ALIASES = {"dryrun": "offline", "run": "online"}
DEFAULT_BASE_URL = "https://api.wandb.ai"


class WandBInitError(SpeedrunError):
    """W&B could not be started the way the configuration asks (server down, no API key, ...)."""


def load_wandb() -> Any:
    """The ``wandb`` module (imported on first use: it takes about a second)."""
    return require(
        "wandb",
        feature="speedrun's WandBMixin",
        install="pip install speedrun-wandb (or pip install wandb)",
    )


def resolve_mode(configured: Any) -> str:
    """``wandb/mode`` from the config, else ``WANDB_MODE``, else ``online``."""
    source = "config 'wandb/mode'"
    value = configured
    if value is None:
        value, source = os.environ.get("WANDB_MODE") or "online", "WANDB_MODE"
    mode = _ALIASES.get(str(value).lower(), str(value).lower())
    if mode not in MODES:
        raise ConfigError(
            f"{source} must be one of {', '.join(MODES)}, got {value!r}. Fix: "
            f"--config.wandb.mode offline (or export WANDB_MODE=offline)"
        )
    return mode


def base_url(wandb: Any) -> str:
    """The W&B server this process talks to (``WANDB_BASE_URL``, ``wandb login --host``)."""
    try:
        url = str(wandb.setup().settings.base_url)
    except Exception:
        url = os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)
    return url.rstrip("/")


def check_reachable(url: str, timeout: float) -> str | None:
    """``None`` when the server at ``url`` answers an HTTP request within ``timeout`` seconds
    (any status counts: it is there), else why not.

    A server that accepts connections but never answers fails here too; ``HTTPS_PROXY`` and
    friends are honoured as W&B honours them.
    """
    import urllib.error
    import urllib.request

    if not urlsplit(url).hostname:
        return f"{url!r} is not a URL with a host name"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # an HTTP answer, whatever its status: the server is there
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"no answer ({reason})"


def start_run(
    wandb: Any,
    *,
    mode: str,
    init: Mapping[str, Any],
    settings: Mapping[str, Any],
    timeout: float,
    on_failure: str,
    report: Any = None,
) -> tuple[Any, str]:
    """``wandb.init(**init)`` in ``mode``; returns ``(run, mode actually used)``.

    In ``online`` mode the server is checked first; on failure the run starts offline with a
    warning, or :class:`WandBInitError` is raised (``on_failure='error'``). ``report`` is called
    with each message for the user (default: print to stderr).
    """
    say = report or (lambda message: print(message, file=sys.stderr, flush=True))
    if mode == "online":
        started = time.monotonic()
        url = base_url(wandb)
        problem = check_reachable(url, timeout)
        if problem is None:
            remaining = max(1.0, timeout - (time.monotonic() - started))
            try:
                return _init(wandb, "online", init, settings, remaining), "online"
            except Exception as error:
                problem = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        message = f"W&B server {url} unusable within wandb/init_timeout={timeout:g} s: {problem}"
        if on_failure == "error":
            raise WandBInitError(
                f"{message}. Fix: check the network and `wandb login`, raise "
                f"--config.wandb.init_timeout, or run with --config.wandb.mode offline "
                f"(or wandb/on_init_failure: offline) and `wandb sync` later"
            )
        warnings.warn(
            f"{message}; logging offline instead (wandb/on_init_failure: offline). "
            f"The run's files can be uploaded later with `wandb sync`.",
            stacklevel=3,
        )
        say(f"speedrun: {message}; logging offline instead")
        mode = "offline"
        # W&B's process-wide settings still say online (and would, among other things, send
        # its usage telemetry to the unreachable server at exit): start over, offline.
        _teardown(wandb)
        os.environ["WANDB_MODE"] = "offline"
    return _init(wandb, mode, init, settings, timeout), mode


def _init(
    wandb: Any, mode: str, init: Mapping[str, Any], settings: Mapping[str, Any], timeout: float
) -> Any:
    known = getattr(wandb.Settings, "model_fields", {})
    values = {key: value for key, value in settings.items() if not known or key in known}
    values["init_timeout"] = timeout
    if mode == "online":
        values["quiet"] = True  # skips the unbounded user look-up after login
    return wandb.init(mode=mode, settings=wandb.Settings(**values), **init)


def _teardown(wandb: Any) -> None:
    """Stop what a failed online start left: W&B's service still holds the run id."""
    try:
        wandb.teardown()
    except Exception:
        pass
