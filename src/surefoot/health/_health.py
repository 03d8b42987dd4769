"""Health checks, readiness phases, the drain on shutdown and the loop-lag watchdog."""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import inspect
import math
import numbers
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import structlog

from .._core.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError
from ..logging import mask_pii, redact_secrets

if TYPE_CHECKING:  # pragma: no cover
    from ._results import Check, CheckResult, HealthReport, Status

__all__ = ["Health", "Phase"]

Phase = Literal["starting", "ready", "draining", "stopped"]
_STATUSES = ("healthy", "degraded", "unhealthy")
_MAX_ERROR_CHARS = 200

_log = structlog.get_logger("surefoot.health")


class _EnvironmentDefaults:
    """:class:`HealthSettings` without any ``SUREFOOT_HEALTH_*`` variable (same fields, same
    defaults): the settings class is then neither built nor loaded."""

    drain_seconds = 0.0
    cache_seconds = 1.0
    check_timeout = 2.0
    loop_lag_threshold = 5.0
    loop_lag_interval = 1.0


class _StillRunning(Exception):
    """A sync check's previous run is still blocking its worker thread."""


def _seconds(what: str, value: Any, *, positive: bool = False) -> float:
    """``value`` as a finite number of seconds (> 0 when ``positive``, else >= 0)."""
    bound = "> 0" if positive else ">= 0"
    seconds = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise ConfigurationError(f"{what} must be a finite number of seconds {bound}; got {value!r}")
    return seconds


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _message(exc: BaseException) -> str:
    """The error of a failed check as probes show it: secrets and PII out, then cut.

    ``/health`` is read by anyone who can reach it: a driver's message may hold a connection
    URL with its password, an HTTP check's URL a token. Redacted before the cut, so a cut
    never leaves half a secret or half an address behind.
    """
    # Only the start is looked at (a huge message costs nothing more); whatever a cut there
    # leaves half-masked lies far beyond what is kept.
    text = str(exc)[: _MAX_ERROR_CHARS * 8]
    text = mask_pii(redact_secrets(f"{type(exc).__name__}: {text}")) if text else type(exc).__name__
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + "…"
    return text


class Health:
    """Health checks and the service's lifecycle phase, served at ``/livez``, ``/readyz``, ``/health``.

    Checks run concurrently, each under its own timeout; results are cached for
    ``cache_seconds`` so probes from several sources cost one round of checks, and concurrent
    requests share the round in progress.

    Phases: ``starting`` (readiness 503) → ``ready`` (after start-up, see
    :meth:`mark_ready`) → ``draining`` (readiness 503 while in-flight work completes, see
    :meth:`start_draining`) → ``stopped``. ``surefoot.install`` moves through them from the
    application's lifespan.

    Every duration left as ``None`` comes from :class:`HealthSettings`
    (``SUREFOOT_HEALTH_*`` environment variables; defaults in parentheses below).

    Args:
        service: the service name in ``/health`` (default: ``Settings.service_name``).
        version: the version in ``/health`` (default: ``Settings.service_version``).
        cache_seconds: how long results are reused (1).
        default_timeout: the timeout of checks added without one (2).
        drain_seconds: after SIGTERM, how long readiness reports 503 while the server keeps
            serving, before the server's own graceful shutdown starts (0; see
            :meth:`install_signal_drain`).
        loop_lag_threshold: liveness fails while the event loop lags more than this (5 s).
        loop_lag_interval: how often the watchdog samples the lag (1 s).
        clock: the clock for uptime, caching and timestamps.
        registry: where ``health_check_status`` and ``health_check_duration_seconds`` go
            (default: the process default; ``surefoot.install`` uses the app's registry).
        metrics: ``False`` records no metrics.

    Raises:
        ConfigurationError: a duration that is negative, infinite, NaN or not a number (argument
            or environment variable).
    """

    def __init__(
        self,
        *,
        service: str | None = None,
        version: str | None = None,
        cache_seconds: float | None = None,
        default_timeout: float | None = None,
        drain_seconds: float | None = None,
        loop_lag_threshold: float | None = None,
        loop_lag_interval: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        registry: Any = None,
        metrics: bool = True,
    ) -> None:
        from .._core.settings import prefix_in_environment

        env: Any = _EnvironmentDefaults
        if prefix_in_environment("SUREFOOT_HEALTH_"):
            from .._core.settings import section
            from ._settings import HealthSettings

            env = section(HealthSettings)
        cache_seconds = env.cache_seconds if cache_seconds is None else cache_seconds
        default_timeout = env.check_timeout if default_timeout is None else default_timeout
        drain_seconds = env.drain_seconds if drain_seconds is None else drain_seconds
        loop_lag_threshold = env.loop_lag_threshold if loop_lag_threshold is None else loop_lag_threshold
        loop_lag_interval = env.loop_lag_interval if loop_lag_interval is None else loop_lag_interval
        cache_seconds = _seconds("Health cache_seconds", cache_seconds)
        default_timeout = _seconds("Health default_timeout", default_timeout)
        loop_lag_threshold = _seconds("Health loop_lag_threshold", loop_lag_threshold)
        loop_lag_interval = _seconds("Health loop_lag_interval", loop_lag_interval, positive=True)
        if service is None or version is None:
            from .._core.settings import get_settings

            settings = get_settings()
            service = service if service is not None else settings.service_name
            version = version if version is not None else settings.service_version
        self.service = service
        self.version = version
        self.cache_seconds = cache_seconds
        self.default_timeout = default_timeout
        self.drain_seconds = drain_seconds  # checked by the property
        self.loop_lag_threshold = loop_lag_threshold
        self.loop_lag_interval = loop_lag_interval
        self.clock = clock
        self._checks: dict[str, Check] = {}
        self._started_at = clock.monotonic()
        self._phase: Phase = "starting"
        self._cached: HealthReport | None = None
        self._cached_at = 0.0
        self._inflight: asyncio.Future[HealthReport] | None = None
        self._last_status: dict[str, Status] = {}
        self._loop_lag: float | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._previous_sigterm: Any = None
        self._sigterm_installed = False
        self._threads_running: set[str] = set()
        self._registry = registry
        self._registry_given = registry is not None
        self._metrics_on = metrics
        self._meters: dict[str, tuple[Any, dict[str, Any]]] = {}

    # -- checks -------------------------------------------------------------------------

    def add(
        self,
        name: str,
        func: Callable[[], Any],
        *,
        critical: bool = True,
        timeout: float | None = None,
    ) -> Check:
        """Register a check.

        A check returns ``None``/``True`` (healthy), ``False`` (unhealthy), a status string
        (``"healthy"``, ``"degraded"``, ``"unhealthy"``) or a dict of details that may hold a
        ``"status"``; raising or timing out makes it unhealthy with the exception's message
        (never its traceback) in the report.

        Args:
            name: the component name; unique.
            func: async callable, or sync callable (run in a worker thread; a sync check that
                hangs keeps its thread until it returns).
            critical: see :class:`Check`.
            timeout: seconds (default: ``default_timeout``).

        Returns:
            The :class:`Check`.

        Raises:
            ConfigurationError: a duplicate name, a non-callable or a non-positive timeout.
        """
        if name in self._checks:
            raise ConfigurationError(f"a health check named {name!r} is already registered")
        if not callable(func):
            raise ConfigurationError(f"health check {name!r} must be callable; got {type(func).__name__}")
        timeout = self.default_timeout if timeout is None else timeout
        timeout = _seconds(f"health check {name!r} timeout", timeout, positive=True)
        from ._results import Check

        check = Check(name, func, critical, timeout)
        self._checks[name] = check
        self._cached = None
        return check

    def check(
        self, name: str | None = None, *, critical: bool = True, timeout: float | None = None
    ) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        """Decorator form of :meth:`add` (the function's name is the default check name)."""

        def register(func: Callable[[], Any]) -> Callable[[], Any]:
            self.add(name or func.__name__, func, critical=critical, timeout=timeout)
            return func

        return register

    @property
    def checks(self) -> tuple[Check, ...]:
        """The registered checks."""
        return tuple(self._checks.values())

    async def run(self, *, use_cache: bool = True) -> HealthReport:
        """Run every check concurrently (or reuse a fresh cached round).

        Args:
            use_cache: reuse results younger than ``cache_seconds``.

        Returns:
            The :class:`HealthReport`.
        """
        now = self.clock.monotonic()
        cached = self._cached
        if use_cache and cached is not None and now - self._cached_at < self.cache_seconds:
            return cached
        if self._inflight is not None and not self._inflight.done():
            return await asyncio.shield(self._inflight)
        future: asyncio.Future[HealthReport] = asyncio.get_running_loop().create_future()
        self._inflight = future
        try:
            report = await self._run_all()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            if self._inflight is future:
                self._inflight = None
        future.set_result(report)
        self._cached, self._cached_at = report, self.clock.monotonic()
        return report

    async def _run_all(self) -> HealthReport:
        checks = list(self._checks.values())
        results = await asyncio.gather(*(self._run_one(c) for c in checks))
        components = {r.name: r for r in results}
        if any(r.critical and r.status == "unhealthy" for r in results):
            status: Status = "unhealthy"
        elif any(r.status != "healthy" for r in results):
            status = "degraded"
        else:
            status = "healthy"
        from ._results import HealthReport

        return HealthReport(status, components, self.clock.time())

    async def _call(self, check: Check) -> Any:
        func = check.func
        if inspect.iscoroutinefunction(func):
            return await func()
        if check.name in self._threads_running:
            # A timed-out sync check cannot be stopped; starting another thread for it on
            # every probe would pile threads up until the pool starves.
            raise _StillRunning("the previous run (in a worker thread) has not returned yet")
        self._threads_running.add(check.name)
        context = contextvars.copy_context()
        running = self._threads_running

        def in_thread() -> Any:
            try:
                return context.run(func)
            finally:
                # Here, not on the awaiting side: a timeout cancels the wait, not the thread.
                running.discard(check.name)

        result = await asyncio.get_running_loop().run_in_executor(None, in_thread)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _run_one(self, check: Check) -> CheckResult:
        started = self.clock.monotonic()
        error: str | None = None
        details: dict[str, Any] = {}
        status: Status
        try:
            async with asyncio.timeout(check.timeout):
                outcome = await self._call(check)
        except TimeoutError:
            status, error = "unhealthy", f"timed out after {check.timeout:g}s"
        except _StillRunning as exc:
            status, error = "unhealthy", str(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing check is a result, reported and logged
            status, error = "unhealthy", _message(exc)
        else:
            status, details, error = self._interpret(check, outcome)
        elapsed = self.clock.monotonic() - started
        latency_ms = round(elapsed * 1000, 3)
        self._note_transition(check, status, error)
        if self._metrics_on:
            self._record(check.name, status, elapsed)
        from ._results import CheckResult

        return CheckResult(check.name, status, check.critical, latency_ms, error, details)

    @staticmethod
    def _interpret(check: Check, outcome: Any) -> tuple[Status, dict[str, Any], str | None]:
        if outcome is None or outcome is True:
            return "healthy", {}, None
        if outcome is False:
            return "unhealthy", {}, "check returned False"
        if isinstance(outcome, str):
            if outcome not in _STATUSES:
                return "unhealthy", {}, f"check returned unknown status {outcome!r}"
            return outcome, {}, None  # type: ignore[return-value]
        if isinstance(outcome, dict):
            details = dict(outcome)
            status = details.pop("status", "healthy")
            if status not in _STATUSES:
                return "unhealthy", details, f"check returned unknown status {status!r}"
            return status, details, None
        return "unhealthy", {}, f"check returned {type(outcome).__name__}; expected None, bool, str or dict"

    def use_registry(self, registry: Any, *, metrics: bool = True) -> None:
        """Record check metrics in ``registry`` unless one was given to the constructor.

        ``surefoot.install`` calls this with the application's registry (or ``metrics=False``
        when metrics are off).
        """
        if not self._registry_given:
            self._registry = registry
            self._metrics_on = metrics
            self._meters.clear()

    def _record(self, name: str, status: Status, seconds: float) -> None:
        meters = self._meters.get(name)
        if meters is None:
            from .._core import catalogue as cat

            state = cat.HEALTH_CHECK_STATUS.get(self._registry)
            duration = cat.HEALTH_CHECK_DURATION.get(self._registry).labels(name)
            meters = self._meters[name] = (duration, {s: state.labels(name, s) for s in _STATUSES})
        duration, states = meters
        duration.observe(seconds)
        for value, child in states.items():
            child.set(1.0 if value == status else 0.0)

    def _note_transition(self, check: Check, status: Status, error: str | None) -> None:
        previous = self._last_status.get(check.name)
        self._last_status[check.name] = status
        if previous == status or (previous is None and status == "healthy"):
            return
        if status == "healthy":
            _log.info("health_check_recovered", check=check.name)
        else:
            _log.warning(
                "health_check_failed", check=check.name, status=status, critical=check.critical,
                error_message=error,
            )

    @property
    def drain_seconds(self) -> float:
        """After SIGTERM, how long readiness reports 503 before the server shuts down."""
        return self._drain_seconds

    @drain_seconds.setter
    def drain_seconds(self, value: float) -> None:
        self._drain_seconds = _seconds("Health drain_seconds", value)

    # -- phases -------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        """``starting``, ``ready``, ``draining`` or ``stopped``."""
        return self._phase

    @property
    def uptime_seconds(self) -> float:
        """Seconds since this :class:`Health` was created."""
        return round(self.clock.monotonic() - self._started_at, 3)

    def mark_ready(self) -> None:
        """Start-up is complete: readiness follows the critical checks from now on."""
        if self._phase == "starting":
            self._phase = "ready"
            _log.info("service_ready", service=self.service, version=self.version)

    def start_draining(self) -> None:
        """Shutdown begins: readiness reports 503 from now on (liveness is unchanged)."""
        if self._phase in ("starting", "ready"):
            self._phase = "draining"
            _log.info("service_draining", service=self.service, drain_seconds=self.drain_seconds)

    def mark_stopped(self) -> None:
        """The service has stopped."""
        self._phase = "stopped"

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Return ``(ready, body)`` for ``/readyz``."""
        phase = self._phase
        if phase != "ready":
            return False, {"status": "not_ready", "phase": phase, "reason": phase}
        report = await self.run()
        failures = report.critical_failures
        components = {n: r.as_dict() for n, r in report.components.items()}
        if failures:
            reason = "critical check failed: " + ", ".join(failures)
            return False, {"status": "not_ready", "phase": phase, "reason": reason, "components": components}
        return True, {"status": "ready", "phase": phase, "components": components}

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Return ``(alive, body)`` for ``/livez`` (only a lagging event loop fails it)."""
        lag = self._loop_lag
        alive = lag is None or lag <= self.loop_lag_threshold
        body: dict[str, Any] = {
            "status": "alive" if alive else "wedged",
            "uptime_seconds": self.uptime_seconds,
        }
        if lag is not None:
            body["loop_lag_seconds"] = round(lag, 4)
        return alive, body

    async def report(self) -> tuple[int, dict[str, Any]]:
        """Return ``(http_status, body)`` for ``/health`` (503 only when unhealthy)."""
        report = await self.run()
        body = {
            "status": report.status,
            "service": self.service,
            "version": self.version,
            "phase": self._phase,
            "uptime_seconds": self.uptime_seconds,
            "timestamp": _iso(report.checked_at),
            "components": {n: r.as_dict() for n, r in report.components.items()},
        }
        return (503 if report.status == "unhealthy" else 200), body

    # -- lifespan helpers ---------------------------------------------------------------

    def observe_loop_lag(self, lag_seconds: float) -> None:
        """Record one loop-lag sample (the watchdog calls this; tests may too)."""
        previous = self._loop_lag
        self._loop_lag = max(0.0, lag_seconds)
        wedged = self._loop_lag > self.loop_lag_threshold
        was_wedged = previous is not None and previous > self.loop_lag_threshold
        if wedged and not was_wedged:
            _log.error(
                "event_loop_lagging",
                lag_seconds=round(self._loop_lag, 3),
                threshold=self.loop_lag_threshold,
            )

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.loop_lag_interval
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            self.observe_loop_lag(loop.time() - expected)

    def start_watchdog(self) -> None:
        """Start the loop-lag watchdog task on the running loop (idempotent)."""
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch_loop(), name="surefoot-loop-lag-watchdog"
            )

    async def stop_watchdog(self) -> None:
        """Stop the watchdog task."""
        task, self._watchdog = self._watchdog, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def install_signal_drain(self) -> bool:
        """On SIGTERM, report not-ready for ``drain_seconds`` before the server shuts down.

        Servers such as uvicorn stop accepting connections as soon as SIGTERM arrives, so a
        readiness probe can never see the drain. This wraps the server's own SIGTERM handler
        (installed before the application starts): the first SIGTERM flips readiness to 503
        and hands the signal to the server ``drain_seconds`` later, while requests — old and
        new — keep being served; a second SIGTERM (or SIGINT) is handed over at once.

        Returns:
            Whether the hook was installed: it needs ``drain_seconds > 0``, the main thread, a
            running loop and a Python-level SIGTERM handler to wrap.
        """
        if self.drain_seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return False
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous) or self._sigterm_installed:
            return False
        loop = asyncio.get_running_loop()
        handed_over = False

        def hand_over(signum: int) -> None:
            nonlocal handed_over
            if not handed_over:
                handed_over = True
                previous(signum, None)

        def on_sigterm(signum: int, frame: Any) -> None:
            if self._phase in ("draining", "stopped"):
                hand_over(signum)
                return
            self.start_draining()
            loop.call_soon_threadsafe(loop.call_later, self.drain_seconds, hand_over, signum)

        self._previous_sigterm = previous
        signal.signal(signal.SIGTERM, on_sigterm)
        self._sigterm_installed = True
        return True

    def remove_signal_drain(self) -> None:
        """Restore the SIGTERM handler wrapped by :meth:`install_signal_drain`."""
        if self._sigterm_installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._sigterm_installed = False
        self._previous_sigterm = None

