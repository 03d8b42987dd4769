"""Flag declarations and the process-wide flag state (overrides read from the database)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._core.state import STATE as PROCESS_STATE
from ..errors import ConfigurationError
from ..logging import get_logger
from ..metrics import MetricSpec

__all__ = ["Flag", "FlagState", "declared", "get_flag", "parse_bool", "reset"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

FLAG_ENABLED = MetricSpec(
    "feature_flag_enabled", "gauge", "1 when the flag is on in this process, else 0", ("flag",),
    multiprocess_mode="max",
)
FLAG_CHANGES = MetricSpec(
    "feature_flag_changes_total", "counter",
    "Flag flips made by this process (source: api, cli, admin) or seen from another one (remote)",
    ("flag", "source"),
)

_log = get_logger("surefoot.flags")


def parse_bool(value: str | bool, *, what: str) -> bool:
    """Read ``on/off``, ``true/false``, ``1/0``, ``yes/no`` (any case) as a boolean.

    Raises:
        ConfigurationError: the value is none of those; the message names ``what``.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{what}: {value!r} is not a boolean; use on/off, true/false, 1/0 or yes/no")


@dataclass
class FlagState:
    """What one process knows about its flags.

    Attributes:
        overrides: runtime overrides read from the database (name → value).
        details: the database rows (name → {"enabled", "updated_at", "updated_by", "reason"}).
        store: the configured :class:`~surefoot.flags.FlagStore` (``None``: env defaults only).
    """

    overrides: dict[str, bool] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    store: Any = None
    registry: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_declared: dict[str, Flag] = {}
_state = FlagState()


class Flag:
    """A runtime flag (kill switch): a default from the environment, a shared runtime override.

    ``PAUSE = Flag("pause_outbound_sms", default=False)`` reads ``PAUSE_OUTBOUND_SMS`` from
    the environment once (on first use) for its default; an override set with
    :func:`surefoot.flags.set` (CLI ``surefoot flags set``, the admin endpoint) wins over it
    in every process connected with :func:`surefoot.flags.configure` within its refresh
    interval. Reading :attr:`enabled` is a dictionary lookup.

    Args:
        name: lower-case identifier (``[a-z][a-z0-9_]*``, at most 63 characters).
        default: the value when neither the environment nor an override says otherwise.
        env: the environment variable of the default (default: ``name.upper()``; ``""``
            disables it).
        description: one line shown by ``surefoot flags list`` and the admin endpoint.

    Raises:
        ConfigurationError: an invalid name, or the same name declared again with another
            default or environment variable.
    """

    __slots__ = ("_env_value", "_listeners", "default", "description", "env", "name")

    def __init__(self, name: str, *, default: bool = False, env: str | None = None, description: str = "") -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(
                f"flag name {name!r} is invalid: use lower-case letters, digits and '_', starting with a letter, "
                "at most 63 characters (e.g. pause_outbound_sms)"
            )
        self.name = name
        self.default = bool(default)
        self.env = name.upper() if env is None else env
        self.description = description
        self._env_value: bool | None = None
        self._listeners: list[Callable[[bool], None]] = []
        with _state.lock:
            existing = _declared.get(name)
            if existing is not None and (existing.default, existing.env) != (self.default, self.env):
                raise ConfigurationError(
                    f"flag {name!r} is already declared with default={existing.default} env={existing.env!r}"
                )
            if existing is None:
                _declared[name] = self
            else:
                self._listeners = existing._listeners  # one set of listeners per name

    @property
    def default_value(self) -> bool:
        """The default in effect: the environment variable if set, else ``default`` (read once)."""
        value = self._env_value
        if value is None:
            raw = os.environ.get(self.env) if self.env else None
            value = self.default if raw is None else parse_bool(raw, what=f"environment variable {self.env}")
            self._env_value = value
        return value

    @property
    def enabled(self) -> bool:
        """The current value: the shared override if one is set, else :attr:`default_value`."""
        value = _state.overrides.get(self.name)
        return self.default_value if value is None else value

    def __bool__(self) -> bool:
        return self.enabled

    @property
    def overridden(self) -> bool:
        """Whether a runtime override (rather than the default) decides the value."""
        return self.name in _state.overrides

    def on_change(self, callback: Callable[[bool], None]) -> Callable[[bool], None]:
        """Call ``callback(new_value)`` whenever this process sees the value change.

        Callbacks run in the thread that noticed the change (the refresher thread, or the
        caller of :func:`~surefoot.flags.set`); an exception in one is logged, never raised.
        """
        self._listeners.append(callback)
        return callback

    def _notify(self, value: bool) -> None:
        for callback in list(self._listeners):
            try:
                callback(value)
            except Exception:  # noqa: BLE001  (a listener must not break the refresher or the caller)
                _log.exception("flag_listener_failed", flag=self.name)

    def describe(self) -> dict[str, Any]:
        """The flag as JSON-ready data (value, default, override details)."""
        row = _state.details.get(self.name, {})
        return {
            "name": self.name,
            "enabled": self.enabled,
            "default": self.default_value,
            "env": self.env or None,
            "overridden": self.overridden,
            "description": self.description,
            "updated_at": row.get("updated_at"),
            "updated_by": row.get("updated_by"),
            "reason": row.get("reason"),
        }

    def __eq__(self, other: object) -> bool:
        """Two declarations of one flag (same name, default and variable) are equal."""
        if not isinstance(other, Flag):
            return NotImplemented
        return (self.name, self.default, self.env) == (other.name, other.default, other.env)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Flag({self.name!r}, enabled={self.enabled})"


def declared() -> dict[str, Flag]:
    """The flags declared in this process, by name."""
    return dict(_declared)


def get_flag(name: str) -> Flag:
    """The declared flag called ``name``.

    Raises:
        KeyError: no flag of that name is declared in this process.
    """
    try:
        return _declared[name]
    except KeyError:
        raise KeyError(f"no flag {name!r} is declared in this process") from None


def apply_overrides(rows: dict[str, dict[str, Any]], *, source: str) -> None:
    """Install the database's view of the overrides; log, count and notify each change."""
    registry = _state.registry
    with _state.lock:
        before = {name: flag.enabled for name, flag in _declared.items()}
        _state.details = rows
        _state.overrides = {name: bool(row["enabled"]) for name, row in rows.items()}
        after = {name: flag.enabled for name, flag in _declared.items()}
    gauge = FLAG_ENABLED.get(registry)
    for name, value in after.items():
        gauge.labels(flag=name).set(1 if value else 0)
        if before[name] != value:
            if source == "remote":
                row = rows.get(name, {})
                _log.warning(
                    "flag_changed", flag=name, enabled=value, source=source,
                    updated_by=row.get("updated_by"), reason=row.get("reason"),
                )
                FLAG_CHANGES.get(registry).labels(flag=name, source=source).inc()
            _declared[name]._notify(value)


def reset() -> None:
    """Forget overrides, cached environment defaults and the configured store (tests).

    Declared flags stay declared. ``surefoot.testing.reset_all()`` runs this too.
    """
    import sys

    store_module = sys.modules.get("surefoot.flags._store")  # only loaded when flags use a database
    if store_module is not None:
        store_module.stop_refresher()
    with _state.lock:
        _state.overrides = {}
        _state.details = {}
        _state.store = None
        _state.registry = None
        for flag in _declared.values():
            flag._env_value = None


PROCESS_STATE.own("flags", _state, reset=reset)
