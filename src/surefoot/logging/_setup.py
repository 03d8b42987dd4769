"""structlog configuration: one format for structlog, stdlib and uvicorn loggers.

Two paths share one processor chain and one output stream:

* structlog loggers (``structlog.get_logger`` / :func:`get_logger`) run the chain directly and
  write the rendered line; below the minimum level a method returns after one comparison
  (nothing is built), and the minimum is read on every call, so cached loggers follow it.
* stdlib loggers (``logging.getLogger``, uvicorn, libraries) reach a handler on the root logger
  that turns the ``LogRecord`` into an event dict and runs the same chain.

The chain: structlog contextvars → surefoot fields (``timestamp``, ``level``, ``event``,
``module``, ids, trace ids) → user processors → formatted exception → :class:`Redactor` →
renderer (orjson JSON lines, or structlog's console renderer).

The request path's access line (:class:`AccessLogger`) is written directly when the chain is
exactly surefoot's with the JSON renderer: the same bytes the chain would write, redaction
included, at a fraction of the cost; with user processors, the console format, bound structlog
context variables or :func:`surefoot.testing.capture_logs` it goes through the chain.

Nothing here runs at import time; :func:`configure_logging` does it, once per call, and
calling it again replaces the previous configuration (no duplicated handlers).

This module is over 600 lines on purpose: the direct access-line path must write exactly the
bytes the processor chain writes, and keeping the two side by side is what keeps them equal
(the rotating file lives in :mod:`._file`, redaction in :mod:`._redact` and :mod:`._secrets`).
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal, cast

import orjson
import structlog

from .. import context as _context
from .._compat.opentelemetry import context_getter, current_trace_ids
from .._compat.structlog import structlog_config, structlog_context_vars
from .._core.settings import Settings, get_settings
from .._core.state import STATE
from ..errors import ConfigurationError
from ._redact import DEFAULT_BODY_KEYS, Redactor, _unloggable, mask_pii, redact_secrets
from ._sink import MAX_BUFFER, Sink

__all__ = [
    "configure_logging",
    "reset_logging",
    "get_logger",
    "bridge_stdlib_loggers",
    "LoggingConfig",
    "SurefootBoundLogger",
    "UVICORN_LOGGERS",
    "AccessLogger",
    "flush_logs",
]

Processor = Callable[[Any, str, dict[str, Any]], Any]

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error")
ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")

_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_LEVEL_NAMES = {
    "exception": "error",
    "warn": "warning",
    "fatal": "critical",
    "msg": "info",
}


# The minimum level of every SurefootBoundLogger, read on each call: configure_logging sets it.
_min_level = logging.NOTSET

# structlog's level names by number (what its filtering loggers pass to the processors).
_LEVEL_TO_NAME = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}

# structlog's filtering logger with every level enabled: its async methods (run in a thread
# with the caller's context and call site) are what SurefootBoundLogger's hand their work to.
_Unfiltered: Any = structlog.make_filtering_bound_logger(logging.NOTSET)


def _set_min_level(level: int) -> None:
    global _min_level
    _min_level = level


def _interpolate(event: str, args: tuple[Any, ...]) -> str:
    # ``log.info("x=%s", x)``: positional arguments, or one non-empty mapping, as structlog does.
    if not args:
        return event
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        return event % args[0]
    return event % args


async def _disabled() -> None:
    return None


class SurefootBoundLogger(structlog.BoundLoggerBase):
    """The bound logger class surefoot configures structlog with.

    It has the methods of structlog's filtering bound logger
    (``structlog.make_filtering_bound_logger``) with the same behaviour, except that the
    minimum level is not fixed in the class: each method compares its level with the one
    :func:`configure_logging` set last, so loggers created (and cached) earlier follow a new
    minimum level too. A call at a disabled level costs that comparison and builds nothing.

    The ``a*`` methods (``ainfo`` ...) check the level when called and, when it is enabled,
    return structlog's coroutine, which renders the line in a worker thread; a disabled one
    returns a coroutine that does nothing. Await the result in both cases.
    """

    def debug(self, event: str, *args: Any, **kw: Any) -> Any:
        if _min_level > logging.DEBUG:
            return None
        return self._proxy_to_logger("debug", _interpolate(event, args) if args else event, **kw)

    def info(self, event: str, *args: Any, **kw: Any) -> Any:
        if _min_level > logging.INFO:
            return None
        return self._proxy_to_logger("info", _interpolate(event, args) if args else event, **kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> Any:
        if _min_level > logging.WARNING:
            return None
        return self._proxy_to_logger("warning", _interpolate(event, args) if args else event, **kw)

    def error(self, event: str, *args: Any, **kw: Any) -> Any:
        if _min_level > logging.ERROR:
            return None
        return self._proxy_to_logger("error", _interpolate(event, args) if args else event, **kw)

    def critical(self, event: str, *args: Any, **kw: Any) -> Any:
        if _min_level > logging.CRITICAL:
            return None
        return self._proxy_to_logger("critical", _interpolate(event, args) if args else event, **kw)

    def exception(self, event: str, *args: Any, **kw: Any) -> Any:
        """An ``error`` line with the exception being handled (``exc_info=True`` by default)."""
        if _min_level > logging.ERROR:
            return None
        kw.setdefault("exc_info", True)
        return self.error(event, *args, **kw)

    def log(self, level: int, event: str, *args: Any, **kw: Any) -> Any:
        """A line at ``level`` (``logging.INFO`` ...), like ``logging.Logger.log``."""
        if level < _min_level:
            return None
        return self._proxy_to_logger(_LEVEL_TO_NAME[level], _interpolate(event, args), **kw)

    msg = info
    warn = warning
    fatal = critical

    def adebug(self, event: str, *args: Any, **kw: Any) -> Coroutine[Any, Any, Any]:
        if _min_level > logging.DEBUG:
            return _disabled()
        return cast("Coroutine[Any, Any, Any]", _Unfiltered.adebug(self, event, *args, **kw))

    def ainfo(self, event: str, *args: Any, **kw: Any) -> Coroutine[Any, Any, Any]:
        if _min_level > logging.INFO:
            return _disabled()
        return cast("Coroutine[Any, Any, Any]", _Unfiltered.ainfo(self, event, *args, **kw))

    def awarning(self, event: str, *args: Any, **kw: Any) -> Coroutine[Any, Any, Any]:
        if _min_level > logging.WARNING:
            return _disabled()
        return cast("Coroutine[Any, Any, Any]", _Unfiltered.awarning(self, event, *args, **kw))

    def aerror(self, event: str, *args: Any, **kw: Any) -> Coroutine[Any, Any, Any]:
        if _min_level > logging.ERROR:
            return _disabled()
        return cast("Coroutine[Any, Any, Any]", _Unfiltered.aerror(self, event, *args, **kw))

    def acritical(self, event: str, *args: Any, **kw: Any) -> Coroutine[Any, Any, Any]:
        if _min_level > logging.CRITICAL:
            return _disabled()
        return cast("Coroutine[Any, Any, Any]", _Unfiltered.acritical(self, event, *args, **kw))

    def aexception(self, event: str, *args: Any, **kw: Any) -> Coroutine[Any, Any, Any]:
        if _min_level > logging.ERROR:
            return _disabled()
        return cast("Coroutine[Any, Any, Any]", _Unfiltered.aexception(self, event, *args, **kw))

    def alog(self, level: int, event: str, *args: Any, **kw: Any) -> Coroutine[Any, Any, Any]:
        if level < _min_level:
            return _disabled()
        return cast("Coroutine[Any, Any, Any]", _Unfiltered.alog(self, level, event, *args, **kw))

    amsg = ainfo
    awarn = awarning
    afatal = acritical

    def is_enabled_for(self, level: int) -> bool:
        """Whether a line at ``level`` would be written under the current minimum level."""
        return level >= _min_level

    def get_effective_level(self) -> int:
        """The current minimum level (set by :func:`configure_logging`)."""
        return _min_level


class _Tee(str):
    """A console line (the string itself) carrying the JSON line of the same event."""

    __slots__ = ("json",)
    json: str

    def __new__(cls, console: str, json: str) -> _Tee:
        tee = super().__new__(cls, console)
        tee.json = json
        return tee


class _TeeRenderer:
    """Console text for the terminal, JSON for the log file."""

    __slots__ = ("console",)

    def __init__(self, console: Processor) -> None:
        self.console = console

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> _Tee:
        json_line = render_json(logger, method_name, event_dict)
        return _Tee(self.console(logger, method_name, dict(event_dict)), json_line)


_SINK = Sink(None)
_PROCESSORS: list[Processor] = []
_IGNORE_FRAMES = ("structlog", "surefoot.logging")


class _LineLogger:
    """The wrapped logger of the structlog path: it knows its name and writes lines."""

    __slots__ = ("name",)

    def __init__(self, name: str | None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        _SINK.write(message)

    def urgent(self, message: str) -> None:
        # An error is written at once (a buffered sink writes what came before it too).
        _SINK.write(message, True)

    log = debug = info = warning = warn = msg
    error = critical = fatal = exception = urgent

    def __repr__(self) -> str:
        return f"<surefoot line logger {self.name!r}>"


def _caller_module() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        name: str = frame.f_globals.get("__name__", "")
        if not name.startswith(_IGNORE_FRAMES):
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return "app"


def _logger_factory(*args: Any) -> _LineLogger:
    if args and isinstance(args[0], str):
        return _LineLogger(args[0])
    return _LineLogger(_caller_module())


class _Fields:
    """Adds the fields every line carries, in a stable order, in one pass."""

    # The timestamp's seconds part is formatted once per second; lines only add microseconds.
    # (second, text) live in one tuple so threads never pair one second with another's text.
    __slots__ = ("_keep_missing", "_stamp")

    def __init__(self, keep_missing_ids: bool) -> None:
        self._keep_missing = keep_missing_ids
        self._stamp: tuple[int, str] = (-1, "")

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        record = event_dict.pop("_record", None)
        if record is not None:
            event_dict.pop("_from_structlog", None)
            now = record.created
            name = record.name
        else:
            now = _time()
            name = getattr(logger, "name", None)
        second = int(now)
        stamp = self._stamp
        if stamp[0] != second:
            text = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            stamp = (second, text)
            self._stamp = stamp
        pop = event_dict.pop
        timestamp = "%s.%06dZ" % (stamp[1], (now - second) * 1_000_000)  # noqa: UP031 - %d truncates as int() does (the access line's form), a little faster
        level = _LEVEL_NAMES.get(method_name, method_name)
        out: dict[str, Any] = {
            "timestamp": timestamp,
            "level": level,
            "event": pop("event", None),
            "module": pop("module", None) or name,
        }
        # An id given with the line wins over the request context's, whatever it is (0, "").
        correlation = pop("correlation_id", None)
        if correlation is None:
            correlation = _get_correlation()
        causation = pop("causation_id", None)
        if causation is None:
            causation = _get_causation()
        tenant = pop("tenant_id", None)
        if tenant is None:
            tenant = _get_tenant()
        if self._keep_missing:
            out["correlation_id"] = correlation
            out["causation_id"] = causation
            out["tenant_id"] = tenant
        else:
            if correlation is not None:
                out["correlation_id"] = correlation
            if causation is not None:
                out["causation_id"] = causation
            if tenant is not None:
                out["tenant_id"] = tenant
        if _modules.get("opentelemetry.trace") is not None:
            ids = _trace_ids()
            if ids is not None:
                out["trace_id"], out["span_id"] = ids
        if event_dict:
            out.update(event_dict)
            # The line's own time and level, whatever fields of those names came with it
            # (``level=80``), as structlog's TimeStamper and add_log_level do.
            out["timestamp"] = timestamp
            out["level"] = level
        return out


_get_correlation = _context.correlation_id.get
_get_causation = _context.causation_id.get
_get_tenant = _context.tenant_id.get
_time = time.time
_modules = sys.modules
# The stack of ``stack_info=True`` starts at the caller of the logging method, past structlog's
# and surefoot's own frames.
_stack_info = structlog.processors.StackInfoRenderer(additional_ignores=["surefoot.logging"])
_format_exc_info = structlog.processors.format_exc_info


_merge_structlog_contextvars = structlog.contextvars.merge_contextvars


def _merge_contextvars(logger: Any, method_name: str, event_dict: dict[str, Any]) -> MutableMapping[str, Any]:
    """structlog's ``merge_contextvars``, skipped when no structlog context variable is bound.

    structlog's processor copies the whole context to find its variables; the table of the
    variables structlog created answers "is any bound?" with a few lookups (every line of a
    service that never binds one). Without the table (another structlog layout) it always runs.
    """
    table = _structlog_vars
    if table is not None:
        if not table:
            return event_dict
        # A copy: another thread may bind a new key meanwhile.
        for var in tuple(table.values()):
            if var.get() is not Ellipsis:
                break
        else:
            return event_dict
    return _merge_structlog_contextvars(logger, method_name, event_dict)


def _exceptions(logger: Any, method_name: str, event_dict: dict[str, Any]) -> MutableMapping[str, Any]:
    """Format ``exc_info``/``stack_info`` into text (before redaction, so it is redacted)."""
    if "exc_info" in event_dict or "stack_info" in event_dict:
        stack = event_dict.get("stack_info")
        if type(stack) is str:  # a stdlib record's, already formatted where it was logged
            del event_dict["stack_info"]
            event_dict["stack"] = stack
        return _format_exc_info(logger, method_name, _stack_info(logger, method_name, event_dict))
    return event_dict


# Record attributes that are not ``extra=`` fields; uvicorn's ``color_message`` duplicates the
# message with terminal colour codes.
_STANDARD_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName", "color_message"}


class _StdlibBridge(logging.Handler):
    """Root handler: renders stdlib records with the surefoot chain."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event_dict: dict[str, Any] = {"event": record.getMessage(), "_record": record}
            for key, value in record.__dict__.items():
                if key not in _STANDARD_RECORD_ATTRS and not key.startswith("_"):
                    event_dict[key] = value
            if record.exc_info:
                event_dict["exc_info"] = record.exc_info
            if record.stack_info:
                event_dict["stack_info"] = record.stack_info
            method = record.levelname.lower()
            result: Any = event_dict
            for processor in _PROCESSORS:
                result = processor(None, method, result)
        except structlog.DropEvent:
            return
        except Exception:  # the logging module's contract: report, never raise
            self.handleError(record)
            return
        _SINK.write(result, record.levelno >= logging.ERROR)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not cost the line
        return _unloggable(value, exc)


def render_json(logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
    """Render ``event_dict`` as one JSON line (orjson; non-string keys allowed)."""
    try:
        return orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # orjson refuses e.g. integers beyond 64 bits; the stdlib encoder does not.
        import json

        try:
            return json.dumps(event_dict, default=_json_default, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            # A field written as given (an id) that contains itself, or keys JSON cannot
            # have: the fields JSON can take as they are, the others as their type's name.
            safe: dict[str, Any] = {}
            for key, value in event_dict.items():
                try:
                    json.dumps(value, default=_json_default)
                except (TypeError, ValueError, RecursionError):
                    value = f"[unloggable {type(value).__name__}]"
                safe[str(key)] = value
            return json.dumps(safe, default=_json_default, ensure_ascii=False, separators=(",", ":"))


class _ConsoleRenderer:
    """structlog's console renderer, without the empty id fields."""

    __slots__ = ("_inner",)

    def __init__(self, colors: bool) -> None:
        self._inner = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        for key in ("correlation_id", "causation_id", "tenant_id"):
            if key in event_dict and event_dict[key] is None:
                del event_dict[key]
        return self._inner(logger, method_name, event_dict)


@dataclass(frozen=True)
class LoggingConfig:
    """What :func:`configure_logging` decided.

    Attributes:
        format: ``json`` or ``console`` (``auto`` resolved).
        level: the minimum level name.
        redactor: the redaction processor in use.
        processors: the full processor chain (the renderer last).
    """

    format: Literal["json", "console"]
    level: str
    redactor: Redactor
    processors: tuple[Processor, ...]


_current: LoggingConfig | None = None
_lock = threading.Lock()


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def build_processors(
    settings: Settings,
    *,
    fmt: Literal["json", "console"],
    colors: bool = False,
    processors: Sequence[Processor] = (),
    body_keys: Iterable[str] = DEFAULT_BODY_KEYS,
    renderer: Processor | None = None,
    keep_missing_ids: bool | None = None,
) -> tuple[list[Processor], Redactor]:
    """Build surefoot's processor chain (see the module docs) and its redactor.

    ``keep_missing_ids`` writes ``correlation_id``, ``causation_id`` and ``tenant_id`` as
    ``null`` when unset (default: with the JSON format; the console renderer leaves them out).
    """
    redactor = Redactor(
        unmasked_pii_at_debug=settings.log_unmasked_pii,
        log_message_bodies=settings.log_message_bodies,
        body_keys=body_keys,
    )
    if renderer is None:
        renderer = render_json if fmt == "json" else _ConsoleRenderer(colors)
    chain: list[Processor] = [
        _merge_contextvars,
        _Fields(keep_missing_ids=fmt == "json" if keep_missing_ids is None else keep_missing_ids),
        *processors,
        _exceptions,
        redactor,
        renderer,
    ]
    return chain, redactor


def _log_file_in_environment() -> bool:
    """Whether a ``SUREFOOT_LOG_FILE*`` variable is set (any case, as the settings read it)."""
    return any(name.upper().startswith("SUREFOOT_LOG_FILE") for name in os.environ)


def configure_logging(
    settings: Settings | None = None,
    *,
    stream: IO[str] | None = None,
    fmt: Literal["auto", "json", "console"] | None = None,
    level: str | None = None,
    processors: Sequence[Processor] = (),
    body_keys: Iterable[str] = DEFAULT_BODY_KEYS,
    uvicorn_access_log: bool = False,
    replace_console_handlers: bool = True,
    log_file: Any = None,
    buffer_ms: int | None = None,
) -> LoggingConfig:
    """Configure structlog and stdlib logging to write one format to one stream.

    Call it once at start-up (``surefoot.install`` does). Calling it again replaces the
    previous configuration: handlers are never duplicated, and loggers already created follow
    the new level, chain and stream.

    Args:
        settings: defaults to :func:`surefoot.get_settings` (``log_format``, ``log_level``,
            ``log_unmasked_pii``, ``log_message_bodies``).
        stream: a text stream; ``None`` means ``sys.stdout`` at the time of each write.
        fmt: overrides ``settings.log_format``; ``auto`` is console on a TTY outside
            production (``SUREFOOT_ENV=production``), JSON otherwise.
        level: overrides ``settings.log_level``.
        processors: extra structlog processors run after surefoot's fields and before
            redaction (so what they add is redacted too). Processors that look for the
            caller's frame skip structlog's frames only: give structlog's
            ``CallsiteParameterAdder`` ``additional_ignores=["surefoot.logging"]``.
        body_keys: field names holding message bodies (omitted or truncated).
        uvicorn_access_log: keep uvicorn's own access log. Off by default: surefoot's
            middleware writes one structured line per request, and with the
            ``uvicorn.access`` logger left without handlers uvicorn skips its formatting work.
        replace_console_handlers: remove plain ``StreamHandler``s writing to stdout/stderr from
            the root logger (``logging.basicConfig``'s), so the service has one format.
        log_file: also write every line as JSON to a rotating file: a path, a
            :class:`~surefoot.logging.LogFile`, ``False`` for none; ``None`` reads
            ``SUREFOOT_LOG_FILE*`` (see ``docs/tracing.md``, "Log files").
        buffer_ms: the longest a line waits before it is written when the stream is a file or
            pipe (never a terminal); ``0`` writes each line at once; ``None`` reads
            ``SUREFOOT_LOG_BUFFER_MS`` (default 100). Lines are also written before 4 KiB
            gather, at once for ``error`` and ``critical``, and always on a clean stop (see
            :func:`flush_logs`).

    Returns:
        The resolved :class:`LoggingConfig`.

    Raises:
        ConfigurationError: an unknown format or level.
    """
    global _current
    settings = settings if settings is not None else get_settings()
    fmt_name = fmt or settings.log_format
    if fmt_name not in ("auto", "json", "console"):
        raise ConfigurationError(f"log format must be one of auto, json, console; got {fmt_name!r}")
    target = stream if stream is not None else sys.stdout
    resolved: Literal["json", "console"]
    if fmt_name == "auto":
        # Production is JSON even with a TTY attached (``docker run -t``): log shippers parse it.
        resolved = "console" if settings.env != "production" and _is_tty(target) else "json"
    else:
        resolved = fmt_name
    level_name = (level or settings.log_level).upper()
    if level_name not in _LEVELS:
        raise ConfigurationError(
            f"log level must be one of {', '.join(_LEVELS)}; got {level or settings.log_level!r}"
        )
    delay_ms = settings.log_buffer_ms if buffer_ms is None else buffer_ms
    if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or not 0 <= delay_ms <= 10_000:
        raise ConfigurationError(f"buffer_ms must be an integer from 0 to 10000; got {delay_ms!r}")
    file = None
    # The file handler (and its settings) is imported only when a file is asked for.
    if log_file is not False and (log_file is not None or _log_file_in_environment()):
        from ._file import LogFile, open_log_file

        file = log_file if isinstance(log_file, LogFile) else open_log_file(log_file)
    colors = resolved == "console" and _is_tty(target) and "NO_COLOR" not in os.environ
    tee = file is not None and resolved == "console"
    chain, redactor = build_processors(
        settings,
        fmt=resolved,
        colors=colors,
        processors=processors,
        body_keys=body_keys,
        renderer=_TeeRenderer(_ConsoleRenderer(colors)) if tee else None,
        # The log file's JSON lines carry every id, null when unset, as JSON lines always do.
        keep_missing_ids=True if tee else None,
    )
    with _lock:
        # Lines buffered so far go to the previous stream first.
        _SINK.configure(stream, delay_ms / 1000)
        if _SINK.file is not None and _SINK.file is not file:
            _SINK.file.close()
        _SINK.file = file
        # In place: loggers bound earlier hold a reference to this very list.
        _PROCESSORS[:] = chain
        # With a log file every line takes the chain (the direct access path writes the console only).
        _access_fast.enable(redactor if resolved == "json" and not processors and file is None else None)
        _set_min_level(_LEVELS[level_name])
        structlog.configure(
            # The same list object (updated in place above); structlog hands it plain dicts
            # (context_class=dict), which is what surefoot's processors are typed to take.
            processors=cast("list[structlog.typing.Processor]", _PROCESSORS),
            wrapper_class=SurefootBoundLogger,
            logger_factory=_logger_factory,
            context_class=dict,
            cache_logger_on_first_use=True,
        )
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, _StdlibBridge) or (
                replace_console_handlers
                and type(handler) is logging.StreamHandler
                and getattr(handler, "stream", None) in _console_streams()
            ):
                root.removeHandler(handler)
        root.addHandler(_StdlibBridge())
        root.setLevel(_LEVELS[level_name])
        bridge_stdlib_loggers(uvicorn_access_log=uvicorn_access_log)
        _current = LoggingConfig(resolved, level_name, redactor, tuple(chain))
    return _current


def _console_streams() -> tuple[Any, ...]:
    return (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)


def bridge_stdlib_loggers(*, uvicorn_access_log: bool = False) -> None:
    """Route uvicorn's and gunicorn's loggers through surefoot's root handler.

    uvicorn installs its own handlers when its ``Config`` is created (for ``uvicorn.run(app)``,
    after the application module was imported); ``surefoot.install`` therefore calls this
    again at application start-up.

    Args:
        uvicorn_access_log: keep ``uvicorn.access``/``gunicorn.access`` (routed like the
            others) instead of silencing them.
    """
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = uvicorn_access_log


def flush_logs() -> None:
    """Write every buffered log line now.

    Lines are written on every clean stop without it (``surefoot.install``'s lifespan
    shutdown, interpreter exit, ``configure_logging`` and ``reset_logging``); call it before
    ending a process some other way (``os._exit`` in a forked worker, for example).
    """
    _SINK.flush()


def pause_buffering(paused: bool) -> None:
    """Write buffered lines and write each line at once until resumed (application shutdown)."""
    _SINK.pause(paused)


def current_config() -> LoggingConfig | None:
    """The configuration made by the last :func:`configure_logging`, or ``None``."""
    return _current


def reset_logging() -> None:
    """Undo :func:`configure_logging` (tests): structlog defaults, no surefoot root handler."""
    global _current
    with _lock:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, _StdlibBridge):
                root.removeHandler(handler)
        # Loggers cached earlier keep this list: leave them a working default chain.
        _PROCESSORS[:] = build_processors(Settings(), fmt="json")[0]
        _access_fast.enable(None)
        _SINK.configure(None, 0)
        if _SINK.file is not None:
            _SINK.file.close()
            _SINK.file = None
        _set_min_level(logging.NOTSET)
        structlog.reset_defaults()
        _current = None


STATE.own("logging", _SINK, reset=reset_logging)


# -- the access line's direct path ------------------------------------------------------------

#: The fields of an access line besides surefoot's own; the direct path is only taken when the
#: redactor has no special rule (secret, body, PII key) for any of them and writes the ids
#: verbatim (ids are never masked).
_ACCESS_KEYS = ("event", "module", "method", "route", "status", "latency_ms", "bytes")
_ACCESS_IDS = ("correlation_id", "causation_id", "tenant_id")
_structlog_config = structlog_config()
_structlog_vars: dict[str, Any] = structlog_context_vars()  # type: ignore[assignment]


class _AccessFast:
    """The state of the direct access-line path (see :class:`AccessLogger`).

    ``redactor`` is set by :func:`configure_logging` when the chain is exactly surefoot's with
    the JSON renderer and no user processors, and the redactor treats every access field as an
    ordinary string; otherwise ``None`` and every line takes the structlog path.
    """

    __slots__ = ("redactor", "cached")

    def __init__(self) -> None:
        self.redactor: Redactor | None = None
        self.cached: Callable[[str], str | None] | None = None

    def enable(self, redactor: Redactor | None) -> None:
        if redactor is not None and (
            _structlog_config is None
            or _structlog_vars is None
            or any(redactor.action_of(key) is not None for key in _ACCESS_KEYS)
            or not all(redactor.is_verbatim(key) for key in _ACCESS_IDS)
        ):
            redactor = None
        self.redactor = redactor
        # The cache is cleared in place, never replaced: its bound ``get`` stays valid.
        self.cached = redactor._cache.get if redactor is not None else None


_access_fast = _AccessFast()
_dumps = orjson.dumps
_OPT = orjson.OPT_NON_STR_KEYS


class AccessLogger:
    """Writes the request path's ``http_request`` line.

    The line is the one the structlog chain renders for
    ``structlog.get_logger(name).info("http_request", method=..., route=..., status=...,
    latency_ms=..., bytes=...)`` (``error`` for 5xx), byte for byte. When logging is configured
    by :func:`configure_logging` with the JSON renderer, no user processors and no structlog
    context variables bound, the line is built directly: the fields are known, the strings
    that may carry PII (method, route, ids) go through the same redactor and its cache, and
    the line is written as the text orjson renders for that event dict (strings that could
    need escaping are rendered by orjson itself), which saves most of the chain's cost. In every other
    case (console format, user processors, :func:`surefoot.testing.capture_logs`, bound
    context variables, structlog configured by someone else) the structlog logger is called.

    Args:
        name: the logger name (the ``module`` field).
    """

    __slots__ = ("name", "_logger", "_stamp", "_fragments", "_info_head", "_error_head", "_parts")

    def __init__(self, name: str = "surefoot.access") -> None:
        self.name = name
        self._logger = structlog.get_logger(name)
        self._stamp: tuple[int, str] = (-1, "")
        self._fragments: dict[str, str] = {}
        # "event" and "module" never change: their JSON is made once. Masking at INFO and
        # above does not depend on the redactor's settings, so neither do these fragments
        # (nor the method and route fragments below).
        head = '","event":"http_request","module":' + _json_str(mask_pii(redact_secrets(name))) + ',"correlation_id":'
        self._info_head = '","level":"info' + head
        self._error_head = '","level":"error' + head
        # (method, route, status) -> (head, the text from causation_id to latency_ms's colon)
        # for the usual line without causation, tenant and trace ids: made once per key.
        self._parts: dict[tuple[str, str, int], tuple[str, str]] = {}

    def write(self, method: str, route: str, status: int, latency_ms: float, nbytes: int,
              trusted_correlation_id: str | None = None) -> None:
        """Write one access line.

        Args:
            method: the request method as labelled (the known methods, else ``_OTHER``).
            route: the route template ("" when none matched).
            status: the response status (ERROR level from 500).
            latency_ms: the latency in milliseconds.
            nbytes: response body bytes.
            trusted_correlation_id: a correlation id the caller generated itself in the
                UUID4 form, which masking leaves unchanged; it skips the redactor.
        """
        if (
            _access_fast.cached is None
            or _PROCESSORS[-1] is not render_json
            or _structlog_config.default_processors is not _PROCESSORS
            or (_structlog_vars and _bound_structlog_vars())
        ):
            log = self._logger.error if status >= 500 else self._logger.info
            log("http_request", method=method, route=route, status=status, latency_ms=latency_ms, bytes=nbytes)
            return
        if _min_level > (logging.ERROR if status >= 500 else logging.INFO):
            return
        now = _time()
        second = int(now)
        stamp = self._stamp
        if stamp[0] != second:
            stamp = (second, datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
            self._stamp = stamp
        # Ids are written as given (never masked), as the redactor does for them.
        correlation = _get_correlation()
        if correlation is None:
            correlation = "null"
        elif correlation is trusted_correlation_id:
            correlation = '"' + correlation + '"'
        else:
            correlation = _id_json(correlation)
        causation = _get_causation()
        tenant = _get_tenant()
        if (
            causation is None and tenant is None
            and (_modules.get("opentelemetry.trace") is None or _trace_ids() is None)
        ):
            parts = self._parts.get((method, route, status)) or self._new_parts(method, route, status)
            head, tail = parts
        else:
            head, tail = self._parts_with_ids(method, route, status, causation, tenant)
        # The same text orjson writes for the event dict the chain builds (same keys, same
        # order, no spaces; int() truncates like the chain's, int() and repr() are how orjson
        # writes ints, int enums and floats); strings that could need escaping went through
        # orjson itself.
        line = (
            # (the microseconds zero-padded to 6 digits as the chain writes them: "%06d" truncates)
            f'{{"timestamp":"{stamp[1]}.{"%06d" % ((now - second) * 1_000_000)}Z{head}'  # noqa: UP031 - cheaper than int() and str()
            f'{correlation}{tail}'
            f'{latency_ms!r},"bytes":{int(nbytes)}}}\n'
        )
        # Sink.write_text, inline for the usual case: a buffered stream and a line below ERROR.
        sink = _SINK
        if status < 500 and (sink.stream if sink.stream is not None else sys.stdout) is sink.buffered:
            with sink.lock:
                lines = sink.lines
                size = sink.size + len(line)
                if lines and size < MAX_BUFFER:
                    lines.append(line)
                    sink.size = size
                else:
                    sink.append(line)
            return
        sink.write_text(line, status >= 500)

    def _new_parts(self, method: str, route: str, status: int) -> tuple[str, str]:
        parts = self._parts_with_ids(method, route, status, None, None)
        cache = self._parts
        if len(cache) >= 1024:  # methods come from clients: bounded
            cache.clear()
        cache[(method, route, status)] = parts
        return parts

    def _parts_with_ids(self, method: str, route: str, status: int, causation: Any, tenant: Any) -> tuple[str, str]:
        causation_json = "null" if causation is None else _id_json(causation)
        tenant_json = "null" if tenant is None else _id_json(tenant)
        trace = ""
        if _modules.get("opentelemetry.trace") is not None:
            ids = _trace_ids()
            if ids is not None:
                trace = f'"trace_id":"{ids[0]}","span_id":"{ids[1]}",'
        fragments = self._fragments
        # Fragments are never empty (at least '""'), so ``or`` only calls on a miss.
        method_json = fragments.get(method) or self._fragment(method)
        route_json = fragments.get(route) or self._fragment(route)
        tail = (
            f',"causation_id":{causation_json},"tenant_id":{tenant_json},{trace}"method":{method_json},'
            f'"route":{route_json},"status":{int(status)},"latency_ms":'
        )
        return (self._error_head if status >= 500 else self._info_head), tail

    def _fragment(self, value: str) -> str:
        # The JSON of a masked method or route; both repeat, so their fragments are kept
        # (methods come from clients: the cache is bounded).
        fragments = self._fragments
        if len(fragments) >= 1024:
            fragments.clear()
        fragment = fragments[value] = _json_str(mask_pii(redact_secrets(value)))
        return fragment


def _id_json(value: Any) -> str:
    """An id as orjson renders it (a string id is quoted, a numeric one is not)."""
    if type(value) is str:
        return _json_str(value)
    return _dumps(value, default=_json_default, option=_OPT).decode()


def _json_str(value: str) -> str:
    """``value`` as orjson renders it (only ``"``, ``\\`` and control characters are escaped)."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return _dumps(value).decode()


def _trace_ids() -> tuple[str, str] | None:
    # current_trace_ids(), without its span lookups when the OpenTelemetry context is empty
    # (no span can be active then), which is what every line outside a span sees.
    get = _otel_context_get or _resolve_otel_context_get()
    if not get():
        return None
    return current_trace_ids()


_otel_context_get: Callable[[], Any] | None = None


def _resolve_otel_context_get() -> Callable[[], Any]:
    global _otel_context_get
    getter = context_getter()
    if getter is None:  # pragma: no cover - opentelemetry.trace imports opentelemetry.context
        return lambda: True
    _otel_context_get = getter
    return getter


def _bound_structlog_vars() -> bool:
    return any(var.get() is not Ellipsis for var in _structlog_vars.values())


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """Return a structlog logger named ``name`` (default: the calling module's name).

    The name is the ``module`` field of its lines unless a ``module`` value is bound.

    Args:
        name: the logger name, e.g. ``"billing"`` or ``__name__``.
        **initial_values: values bound to every line of this logger.
    """
    if name is None:
        name = sys._getframe(1).f_globals.get("__name__", "app")
    return structlog.get_logger(name, **initial_values)
