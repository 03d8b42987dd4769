"""SQLAlchemy instrumentation: query durations, errors, slow queries and pool saturation.

``instrument_engine(engine)`` works on sync and async engines (``AsyncEngine`` is
instrumented through its ``sync_engine``) for every dialect. Statements are timed around the
dialect's execute methods (``do_execute``, ``do_executemany``, ``do_execute_no_params``),
which see exactly the time the driver spent, failures included. The methods are wrapped on
the engine's own dialect instance (:mod:`surefoot._compat.sqlalchemy`); SQLAlchemy's public ``DialectEvents``
for the same methods are the fallback. Both are far cheaper than a
``before_cursor_execute``/``after_cursor_execute`` pair: registering any ``ConnectionEvents``
listener moves every execution of the engine onto SQLAlchemy's slower event path (+30 % on a
trivial SQLite query here), and failures are seen in the wrapper, so no ``handle_error``
listener is needed either.

Labels never carry SQL text: ``operation`` is the statement's verb (``SELECT``, ``INSERT``,
``UPDATE``, ``DELETE``, else ``_OTHER``) and ``statement`` is a name the caller gives through
an execution option (``statement_name`` by default), capped like every label.

Pool gauges are not touched per query: a collector asks each pool (``checkedout()``,
``checkedin()``, ``overflow()``, ``size()``) when Prometheus scrapes.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from .._compat.prometheus import Parts, observer_parts
from .._compat.sqlalchemy import max_overflow, wrap_dialect
from .._core import catalogue as cat
from .._core.state import default_registry
from ..errors import ConfigurationError
from ._labels import OVERFLOW, LabelCap, metrics_enabled, metrics_settings

__all__ = ["instrument_engine", "EngineInstrumentation", "OPERATIONS", "classify_statement", "pool_readings"]

OPERATIONS: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE", OVERFLOW)
_VERBS = frozenset(OPERATIONS[:-1])
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*", re.S)
_WORD = re.compile(r"[A-Za-z]+")
# After WITH: string literals, quoted identifiers, comments, dollar quotes, words, parentheses.
_TOKEN = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|--[^\n]*|/\*.*?\*/|\$(\w*)\$.*?\$\1\$|[A-Za-z_]\w*|[()]""",
    re.S,
)
# Statements other than the four verbs that may follow common table expressions.
_NOT_A_VERB = frozenset({"VALUES", "MERGE", "TABLE"})
_SQL_LOG_CHARS = 1000
_CACHE_MAX = 4096
_log = structlog.get_logger("surefoot.db")



def classify_statement(sql: str) -> str:
    """Return the operation label of ``sql``: ``SELECT``, ``INSERT``, ``UPDATE``, ``DELETE`` or ``_OTHER``.

    Leading comments and parentheses are skipped; for ``WITH`` the verb after the last
    common table expression decides.
    """
    start = _LEADING.match(sql)
    word = _WORD.match(sql, start.end() if start else 0)
    if word is None:
        return OVERFLOW
    verb = word.group(0).upper()
    if verb in _VERBS:
        return verb
    if verb == "WITH":
        return _after_ctes(sql, word.end())
    return OVERFLOW


def _after_ctes(sql: str, pos: int) -> str:
    """The verb of the statement that follows ``WITH`` at ``pos``: the first of the verbs
    outside every parenthesis (CTE bodies and column lists), literal and comment."""
    depth = 0
    for token in _TOKEN.finditer(sql, pos):
        text = token.group(0)
        if text == "(":
            depth += 1
        elif text == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and (text[0].isalpha() or text[0] == "_"):
            upper = text.upper()
            if upper in _VERBS:
                return upper
            if upper in _NOT_A_VERB:
                return OVERFLOW
    return OVERFLOW


class _Tracker:
    """Counts check-outs for pools without ``checkedout()`` (NullPool, StaticPool, ...)."""

    __slots__ = ("out", "_lock")

    def __init__(self) -> None:
        self.out = 0
        self._lock = threading.Lock()

    def checkout(self, *args: Any) -> None:
        with self._lock:
            self.out += 1

    def checkin(self, *args: Any) -> None:
        with self._lock:
            self.out = max(0, self.out - 1)


class _PoolEntry:
    __slots__ = ("engine", "name", "max_connections", "tracker")

    def __init__(self, engine: Any, name: str, max_connections: int | None, tracker: _Tracker | None) -> None:
        self.engine = weakref.ref(engine)
        self.name = name
        self.max_connections = max_connections
        self.tracker = tracker


def _read(entry: _PoolEntry) -> tuple[float, float | None, float | None, float | None] | None:
    engine = entry.engine()
    if engine is None:
        return None
    pool = engine.pool  # read every time: engine.dispose() replaces the pool
    # ``max_connections`` stands in only where the pool cannot tell its maximum.
    fallback = None if entry.max_connections is None else float(entry.max_connections)
    if entry.tracker is None:
        size = pool.size()
        in_use = float(pool.checkedout())
        idle: float | None = float(pool.checkedin())
        overflow: float | None = float(max(0, pool.overflow()))
        extra = max_overflow(pool)
        maximum = float(size + extra) if extra is not None and extra >= 0 and size > 0 else fallback
        return in_use, idle, overflow, maximum
    return float(entry.tracker.out), None, None, fallback


def _has_counters(pool: Any) -> bool:
    from sqlalchemy.pool import QueuePool

    return isinstance(pool, QueuePool)


class _PoolCollector:
    """Reads every instrumented pool of one registry at scrape time."""

    def __init__(self) -> None:
        self._entries: list[_PoolEntry] = []
        self._lock = threading.Lock()

    def add(self, entry: _PoolEntry) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e.engine() is not None] + [entry]

    def remove(self, entry: _PoolEntry) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e is not entry]

    def readings(self) -> dict[str, list[float | None]]:
        """``{pool: [in_use, idle, overflow, max]}``; engines sharing a name are summed."""
        out: dict[str, list[float | None]] = {}
        for entry in self._entries:
            reading = _read(entry)
            if reading is None:
                continue
            total = out.get(entry.name)
            if total is None:
                out[entry.name] = list(reading)
                continue
            for i, value in enumerate(reading):
                previous = total[i]
                # An unknown part (None) makes the sum unknown only for the maximum.
                if i == 3:
                    total[i] = None if previous is None or value is None else previous + value
                else:
                    total[i] = value if previous is None else previous + (value or 0.0)
        return out

    def _families(self, readings: dict[str, list[float | None]] | None) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        specs = (cat.DB_CONNECTIONS_IN_USE, cat.DB_CONNECTIONS_IDLE, cat.DB_CONNECTIONS_OVERFLOW,
                 cat.DB_CONNECTIONS_MAX, cat.DB_CONNECTIONS_UTILIZATION)
        families = [GaugeMetricFamily(s.name, s.documentation, labels=["pool"]) for s in specs]
        for name, values in (readings or {}).items():
            in_use, _idle, _overflow, maximum = values
            for family, value in zip(families, values, strict=False):
                if value is not None:
                    family.add_metric([name], value)
            if maximum:
                families[4].add_metric([name], 100.0 * (in_use or 0.0) / maximum)
        return families

    def describe(self) -> list[Any]:
        return self._families(None)

    def collect(self) -> Iterable[Any]:
        return self._families(self.readings())


_collectors_lock = threading.Lock()
_collectors: weakref.WeakKeyDictionary[Any, _PoolCollector] = weakref.WeakKeyDictionary()
_instrumented: weakref.WeakKeyDictionary[Any, EngineInstrumentation] = weakref.WeakKeyDictionary()


def _collector(registry: Any) -> _PoolCollector:
    with _collectors_lock:
        found = _collectors.get(registry)
        if found is None:
            found = _collectors[registry] = _PoolCollector()
            registry.register(found)
        return found


def pool_readings(registry: Any = None) -> dict[str, list[float | None]]:
    """Return ``{pool: [in_use, idle, overflow, max]}`` for the pools instrumented in ``registry``.

    ``None`` stands for a value the pool cannot report (idle and overflow of pools without
    counters, the maximum of unbounded pools).
    """
    reg = registry if registry is not None else default_registry()
    found = _collectors.get(reg)
    return found.readings() if found is not None else {}


def _default_name(engine: Any) -> str:
    url = engine.url
    database = url.database or ""
    if url.get_backend_name() == "sqlite":
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return "sqlite_memory"
        stem = database.replace("\\", "/").rsplit("/", 1)[-1]
        return stem.rsplit(".", 1)[0] or "sqlite"
    return database or url.get_backend_name()


class EngineInstrumentation:
    """What :func:`instrument_engine` set up on one engine.

    Attributes:
        pool: the ``pool`` label of the engine's metrics.
        enabled: ``False`` when metrics are off (nothing was attached).
        slow_query_seconds: the slow-query threshold (0 = no slow-query log).
    """

    def __init__(
        self,
        engine: Any,
        *,
        pool: str,
        registry: Any,
        statement_name: str | Callable[[str, Any], str | None],
        slow_query_seconds: float,
        max_label_values: int,
        max_connections: int | None,
        enabled: bool,
    ) -> None:
        self.pool = pool
        self.enabled = enabled
        self.slow_query_seconds = slow_query_seconds
        self._engine = weakref.ref(engine)
        self._listeners: list[tuple[str, Callable[..., Any]]] = []
        self._undo: Callable[[], None] | None = None
        #: How statements are timed: ``"dialect"`` (the engine's dialect methods wrapped) or
        #: ``"events"`` (SQLAlchemy ``DialectEvents``); ``None`` when nothing was attached.
        self.hook: str | None = None
        self._entry: _PoolEntry | None = None
        self._collector: _PoolCollector | None = None
        if not enabled:
            return
        self._duration = cat.DB_QUERY_DURATION.get(registry)
        self._errors = cat.DB_QUERY_ERRORS.get(registry)
        self._slow = cat.DB_SLOW_QUERIES.get(registry)
        self._pool_cap = LabelCap(registry, "db", "pool", max_label_values)
        self._statement_cap = LabelCap(registry, "db", "statement", max_label_values)
        self._error_cap = LabelCap(registry, "db", "error_type", max_label_values)
        self._pool_label = self._pool_cap(pool)
        self._observers: dict[Any, Parts] = {}
        self._by_name: dict[Any, tuple[str, Parts]] = {}
        self._lock = threading.Lock()
        self._option = statement_name if isinstance(statement_name, str) else None
        self._namer = None if isinstance(statement_name, str) else statement_name
        self._attach(engine, registry, max_connections)

    # -- set-up -----------------------------------------------------------------------

    def _attach(self, engine: Any, registry: Any, max_connections: int | None) -> None:
        from sqlalchemy import event

        timed = self._timed
        wrappers: dict[str, Callable[[Callable[..., Any]], Callable[..., bool]]] = {
            "do_execute": lambda original: timed(original, 3),
            "do_executemany": lambda original: timed(original, 3),
            "do_execute_no_params": lambda original: timed(original, 2),
        }
        self._undo = wrap_dialect(engine.dialect, wrappers)
        if self._undo is not None:
            self.hook = "dialect"
        else:  # the dialect cannot be wrapped: the public DialectEvents do the same, a bit slower
            self.hook = "events"
            dialect = engine.dialect
            for name, make in wrappers.items():
                fn = make(getattr(dialect, name))
                event.listen(engine, name, fn)
                self._listeners.append((name, fn))
        tracker = None
        if not _has_counters(engine.pool):
            tracker = _Tracker()
            for event_name, hook in (("checkout", tracker.checkout), ("checkin", tracker.checkin)):
                event.listen(engine, event_name, hook)
                self._listeners.append((event_name, hook))
        self._entry = _PoolEntry(engine, self._pool_label, max_connections, tracker)
        self._collector = _collector(registry)
        self._collector.add(self._entry)

    def _timed(self, execute: Callable[..., Any], context_at: int) -> Callable[..., bool]:
        """Wrap one of the dialect's execute methods; ``context_at`` is the context's position
        (3 for ``do_execute``/``do_executemany``, 2 for ``do_execute_no_params``)."""
        perf = time.perf_counter
        observers = self._observers
        by_name = self._by_name
        new_observer = self._new_observer
        failed = self._failed
        slow_at = self.slow_query_seconds or float("inf")
        slow = self._slow_query
        option = self._option
        namer = self._namer  # None exactly when option is set

        if context_at == 2:

            def no_params(cursor: Any, statement: str, context: Any = None) -> bool:
                start = perf()
                try:
                    execute(cursor, statement, context)
                except BaseException as exc:
                    failed(statement, exc)
                    raise
                elapsed = perf() - start
                if namer is None:
                    name = context.execution_options.get(option) if context is not None else None
                else:
                    name = namer(statement, context)
                if name is None:
                    observe = observers.get(statement)
                else:
                    # SQLAlchemy hands over the same string object for a cached statement, so
                    # "same name, same statement" is one dict lookup and an identity check.
                    last = by_name.get(name)
                    observe = last[1] if last is not None and last[0] is statement else None
                if observe is None:
                    observe = new_observer(statement, name)
                nexts, bounds, append, mask, fold = observe
                append(elapsed)
                if nexts[bisect_left(bounds, elapsed)]() & mask == mask:
                    fold()
                if elapsed >= slow_at:
                    slow(statement, name, elapsed)
                return True

            return no_params

        def with_params(cursor: Any, statement: str, parameters: Any, context: Any = None) -> bool:
            start = perf()
            try:
                execute(cursor, statement, parameters, context)
            except BaseException as exc:
                failed(statement, exc)
                raise
            elapsed = perf() - start
            if namer is None:
                name = context.execution_options.get(option) if context is not None else None
            else:
                name = namer(statement, context)
            if name is None:
                observe = observers.get(statement)
            else:
                # SQLAlchemy hands over the same string object for a cached statement, so
                # "same name, same statement" is one dict lookup and an identity check.
                last = by_name.get(name)
                observe = last[1] if last is not None and last[0] is statement else None
            if observe is None:
                observe = new_observer(statement, name)
            nexts, bounds, append, mask, fold = observe
            append(elapsed)
            if nexts[bisect_left(bounds, elapsed)]() & mask == mask:
                fold()
            if elapsed >= slow_at:
                slow(statement, name, elapsed)
            return True

        return with_params

    def _labels(self, statement: str, name: Any) -> tuple[str, str]:
        statement_label = "" if name is None else self._statement_cap(str(name))
        return classify_statement(statement), statement_label

    def _new_observer(self, statement: str, name: Any) -> Parts:
        key = statement if name is None else (statement, name)
        found = self._observers.get(key)
        if found is not None and name is not None:
            self._by_name[name] = (statement, found)  # one name used for several statements
            return found
        with self._lock:
            found = self._observers.get(key)
            if found is None:
                operation, statement_label = self._labels(statement, name)
                found = observer_parts(self._duration.labels(self._pool_label, operation, statement_label))
                if statement_label == OVERFLOW:
                    # Not cached: the cap sees (and counts) every execution of a name it folded,
                    # as the HTTP labels count every overflowing request.
                    return found
                if len(self._observers) < _CACHE_MAX:
                    self._observers[key] = found
            if name is not None and len(self._by_name) < _CACHE_MAX:
                self._by_name[name] = (statement, found)
            return found

    def _failed(self, statement: str, exc: BaseException) -> None:
        operation = classify_statement(statement)
        error_type = self._error_cap(type(exc).__name__)
        self._errors.labels(self._pool_label, operation, error_type).inc()

    def _slow_query(self, statement: str, name: Any, elapsed: float) -> None:
        operation, statement_label = self._labels(statement, name)
        self._slow.labels(self._pool_label, operation, statement_label).inc()
        _log.warning(
            "db_query", kind="db_query", operation=operation, statement=statement_label or None,
            pool=self._pool_label, duration_ms=round(elapsed * 1000.0, 3), slow=True,
            threshold_ms=round(self.slow_query_seconds * 1000.0, 3),
            sql=statement[:_SQL_LOG_CHARS],
        )

    # -- public -----------------------------------------------------------------------

    def remove(self) -> None:
        """Detach every listener and stop reporting the pool (idempotent)."""
        from sqlalchemy import event

        engine = self._engine()
        listeners, self._listeners = self._listeners, []
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()
        if engine is not None:
            for name, fn in listeners:
                if event.contains(engine, name, fn):
                    event.remove(engine, name, fn)
            with _collectors_lock:
                if _instrumented.get(engine.dialect) is self:
                    del _instrumented[engine.dialect]
        if self._collector is not None and self._entry is not None:
            self._collector.remove(self._entry)
        self._entry = None


def instrument_engine(
    engine: Any,
    *,
    name: str | None = None,
    registry: Any = None,
    statement_name: str | Callable[[str, Any], str | None] = "statement_name",
    slow_query_seconds: float | None = None,
    max_label_values: int | None = None,
    max_connections: int | None = None,
) -> EngineInstrumentation:
    """Report a SQLAlchemy engine's queries and pool as Prometheus metrics.

    Adds ``db_query_duration_seconds{pool, operation, statement}``,
    ``db_query_errors_total{pool, operation, error_type}``,
    ``db_slow_queries_total{pool, operation, statement}`` and the pool gauges
    ``db_connections_in_use``, ``db_connections_idle``, ``db_connections_overflow``,
    ``db_connections_max`` and ``db_connections_utilization_percent`` (``{pool}``, read at
    scrape time). Statements at or above ``slow_query_seconds`` are logged (``surefoot.db`` /
    ``db_query`` at WARNING with ``slow=True`` and the SQL text with its placeholders — never
    the bound parameters).

    With ``SUREFOOT_METRICS_ENABLED=false`` nothing is attached and queries run exactly as
    without surefoot. Instrumenting an engine twice (or a copy made by
    ``engine.execution_options(...)``, which shares its dialect and pool) returns the first
    instrumentation.

    Args:
        engine: an ``Engine`` or ``AsyncEngine`` (any dialect).
        name: the ``pool`` label (default: the database name; the file name for SQLite).
            Engines sharing a name are added together in the pool gauges.
        registry: where the metrics live (default: the process default registry).
        statement_name: the execution option naming a statement
            (``conn.execution_options(statement_name="load_customer")`` or
            ``select(...).execution_options(statement_name=...)``), or a callable
            ``(sql, execution_context) -> name | None``. Unnamed statements have ``statement=""``.
        slow_query_seconds: the slow-query threshold (default
            ``SUREFOOT_METRICS_SLOW_QUERY_SECONDS``, 0.5; 0 disables the log).
        max_label_values: distinct ``statement`` / ``error_type`` / ``pool`` values kept
            before new ones become ``_OTHER`` (default ``SUREFOOT_METRICS_MAX_LABEL_VALUES``).
        max_connections: the pool's maximum where SQLAlchemy cannot tell it: pools without
            counters (``NullPool``, ``StaticPool``, ...), unbounded queue pools and releases
            that hide ``max_overflow``. A queue pool's ``size() + max_overflow`` wins when known.

    Returns:
        The :class:`EngineInstrumentation` (``.remove()`` detaches it).

    Raises:
        ConfigurationError: ``engine`` is not a SQLAlchemy engine, or an option is invalid.
        MissingExtraError: SQLAlchemy is not installed (extra ``sql``).
    """
    from .._core.extras import require

    require("sqlalchemy", "sql")
    sync_engine = getattr(engine, "sync_engine", engine)
    if not all(hasattr(sync_engine, attr) for attr in ("dialect", "pool", "url")):
        raise ConfigurationError(
            f"instrument_engine needs a SQLAlchemy Engine or AsyncEngine; got {type(engine).__name__}"
        )
    if not (isinstance(statement_name, str) and statement_name) and not callable(statement_name):
        raise ConfigurationError(
            "statement_name must be an execution-option name or a callable (sql, context) -> name; "
            f"got {statement_name!r}"
        )
    if max_connections is not None and (
        isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1
    ):
        raise ConfigurationError(f"max_connections must be a positive integer; got {max_connections!r}")
    overrides: dict[str, Any] = {}
    if slow_query_seconds is not None:
        overrides["slow_query_seconds"] = slow_query_seconds
    if max_label_values is not None:
        overrides["max_label_values"] = max_label_values
    settings = metrics_settings(**overrides)
    with _collectors_lock:
        # keyed by dialect: engine.execution_options(...) copies share the engine's dialect and pool
        existing = _instrumented.get(sync_engine.dialect)
    if existing is not None:
        return existing
    pool = name if name is not None else _default_name(sync_engine)
    if not isinstance(pool, str) or not pool:
        raise ConfigurationError(f"name must be a non-empty string; got {pool!r}")
    instrumentation = EngineInstrumentation(
        sync_engine,
        pool=pool,
        registry=registry if registry is not None else default_registry(),
        statement_name=statement_name,
        slow_query_seconds=settings.slow_query_seconds,
        max_label_values=settings.max_label_values,
        max_connections=max_connections,
        enabled=metrics_enabled(),
    )
    if instrumentation.enabled:
        with _collectors_lock:
            _instrumented[sync_engine.dialect] = instrumentation
    return instrumentation
