"""Captured structured logs for assertions."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

import structlog

__all__ = ["capture_logs", "CapturedLogs"]


class CapturedLogs(list):  # type: ignore[type-arg]
    """The log lines captured by :func:`capture_logs`: a list of dicts, after redaction."""

    def events(self) -> list[Any]:
        """The ``event`` of every captured line, in order."""
        return [line.get("event") for line in self]

    def filter(self, **match: Any) -> list[dict[str, Any]]:
        """The lines whose fields equal every ``match`` item, e.g. ``filter(event="x")``."""
        return [line for line in self if all(line.get(k, _MISSING) == v for k, v in match.items())]

    def one(self, **match: Any) -> dict[str, Any]:
        """The single line matching ``match``.

        Raises:
            AssertionError: no line or more than one line matches (with the lines seen).
        """
        found = self.filter(**match)
        if len(found) != 1:
            raise AssertionError(
                f"expected exactly one log line matching {match}, found {len(found)}; "
                f"lines: {list(self)}"
            )
        return found[0]


_MISSING = object()


@contextlib.contextmanager
def capture_logs(*, level: str | None = "DEBUG") -> Iterator[CapturedLogs]:
    """Collect every log line (structlog and stdlib) as a dict, instead of writing it.

    The lines are exactly what would be rendered: surefoot's fields (``timestamp``, ``level``,
    ``event``, ``module``, ids) added and PII redacted. When logging was not configured by
    surefoot, it is configured for the duration of the block (JSON, to nowhere) and reset
    afterwards.

    Args:
        level: minimum level captured for the block (``None`` keeps the configured one);
            it applies to loggers created earlier too.

    Yields:
        A :class:`CapturedLogs` list that fills while the block runs.

    Example::

        with capture_logs() as logs:
            client.get("/users/1")
        assert logs.one(event="http_request")["status"] == 200
    """
    from ..logging import _setup

    configured_here = _setup.current_config() is None
    if configured_here:
        _setup.configure_logging(stream=io.StringIO(), fmt="json", replace_console_handlers=False)
    config = _setup.current_config()
    if config is None:  # pragma: no cover - configure_logging always sets it
        raise RuntimeError("logging configuration missing after configure_logging()")
    captured = CapturedLogs()

    def collect(logger: Any, method_name: str, event_dict: dict[str, Any]) -> Any:
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    chain = _setup._PROCESSORS
    renderer = chain[-1]
    chain[-1] = collect
    root = logging.getLogger()
    old_root_level = root.level
    if level is not None:
        _setup._set_min_level(_setup._LEVELS[level.upper()])
        root.setLevel(_setup._LEVELS[level.upper()])
    try:
        yield captured
    finally:
        if chain and chain[-1] is collect:
            chain[-1] = renderer
        if level is not None:
            _setup._set_min_level(_setup._LEVELS[config.level])
            root.setLevel(old_root_level)
        if configured_here:
            _setup.reset_logging()
