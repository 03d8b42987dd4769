"""The event catalogue: a JSON Schema per ``(event_name, schema_version)``.

Registered events are checked when they are written (:func:`surefoot.outbox.add`), so a
payload that breaks its contract never reaches the table, a consumer or the dead letters.
Validation uses ``jsonschema`` (extra ``schema``), imported on first registration.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from .._core.extras import require
from ..errors import ConfigurationError, SurefootError

__all__ = ["EventCatalogue", "EventSchemaError", "default_catalogue", "register_event"]


class EventSchemaError(SurefootError, ValueError):
    """A payload does not conform to the JSON Schema registered for its event.

    Attributes:
        event_name: the event.
        schema_version: the version whose schema refused it.
        errors: one mapping per problem with ``loc`` (path inside the payload, as a list) and
            ``msg``; the message names every path (``payload.caller.phone``).
    """

    def __init__(self, event_name: str, schema_version: int, errors: list[dict[str, Any]]) -> None:
        self.event_name = event_name
        self.schema_version = schema_version
        self.errors = errors
        details = "; ".join(f"{_dotted(e['loc'])}: {e['msg']}" for e in errors)
        super().__init__(
            f"payload of event {event_name!r} (schema version {schema_version}) does not "
            f"conform to its registered schema: {details}"
        )


def _dotted(loc: list[Any]) -> str:
    out = "payload"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class EventCatalogue:
    """Event names, versions and their JSON Schemas.

    An event that is not registered is accepted as is (register events to enforce their
    contract); a registered event name written with an unknown version is refused.
    """

    def __init__(self) -> None:
        self._validators: dict[tuple[str, int], Any] = {}
        self._schemas: dict[tuple[str, int], Mapping[str, Any]] = {}
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def register(self, event_name: str, schema: Mapping[str, Any], *, version: int = 1) -> None:
        """Register the JSON Schema of ``event_name`` at ``version``.

        Args:
            event_name: the event name, e.g. ``"CallDetected"``.
            schema: a JSON Schema (draft 2020-12 unless it declares ``$schema``).
            version: the schema version the payload is written with.

        Raises:
            ConfigurationError: the schema itself is invalid, or another schema is already
                registered for this name and version.
            MissingExtraError: ``jsonschema`` is not installed (``surefoot[schema]``).
        """
        if not event_name:
            raise ConfigurationError("event_name must be a non-empty string")
        if not isinstance(version, int) or version < 1:
            raise ConfigurationError(f"schema version must be a positive integer, got {version!r}")
        jsonschema = require("jsonschema", "schema")
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigurationError(
                f"the JSON Schema for {event_name!r} v{version} is invalid: {exc.message}"
            ) from exc
        with self._lock:
            existing = self._schemas.get((event_name, version))
            if existing is not None and existing != schema:
                raise ConfigurationError(
                    f"event {event_name!r} version {version} is already registered with another "
                    "schema; bump the version to change a published contract"
                )
            self._schemas[(event_name, version)] = schema
            self._validators[(event_name, version)] = cls(schema, format_checker=cls.FORMAT_CHECKER)
            self._names.add(event_name)

    def __contains__(self, event_name: object) -> bool:
        return event_name in self._names

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(sorted(self._schemas))

    def schema(self, event_name: str, version: int = 1) -> Mapping[str, Any] | None:
        """The schema registered for ``(event_name, version)``, or ``None``."""
        return self._schemas.get((event_name, version))

    def versions(self, event_name: str) -> list[int]:
        """The registered versions of ``event_name`` in increasing order."""
        return sorted(v for (n, v) in self._schemas if n == event_name)

    def validate(self, event_name: str, payload: Any, *, version: int = 1) -> None:
        """Check ``payload`` against the schema of ``(event_name, version)`` if one is registered.

        Raises:
            EventSchemaError: the payload does not conform, or the name is registered but
                not at this version; the message names each failing field path.
        """
        if event_name not in self._names:
            return
        validator = self._validators.get((event_name, version))
        if validator is None:
            raise EventSchemaError(
                event_name,
                version,
                [{"loc": [], "msg": f"no schema registered for version {version}; "
                  f"registered versions: {self.versions(event_name)}"}],
            )
        problems = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
        if problems:
            errors = [{"loc": list(e.absolute_path), "msg": e.message} for e in problems]
            raise EventSchemaError(event_name, version, errors)

    def clear(self) -> None:
        """Forget every registration (tests)."""
        with self._lock:
            self._validators.clear()
            self._schemas.clear()
            self._names.clear()


default_catalogue = EventCatalogue()
"""The catalogue :func:`surefoot.outbox.add` checks unless given another."""


def register_event(event_name: str, schema: Mapping[str, Any], *, version: int = 1) -> None:
    """Register a JSON Schema in the default catalogue (see :meth:`EventCatalogue.register`)."""
    default_catalogue.register(event_name, schema, version=version)
