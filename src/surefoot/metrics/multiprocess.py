"""Correct metric totals when a service runs several worker processes.

Prometheus scrapes one worker at a time; without help each answer would be that worker's
own counts. prometheus_client's multi-process mode writes every value to memory-mapped
files in ``PROMETHEUS_MULTIPROC_DIR`` and the endpoint sums the files of all workers.

**The directory must be known before prometheus_client creates a metric.**
prometheus_client picks its value class when ``prometheus_client.values`` is imported,
from that environment variable. The master process therefore sets the variable (and
creates and clears the directory) *before* workers start: :func:`prepare`, called by
:func:`on_starting` (gunicorn) or :func:`run_uvicorn` (uvicorn ``--workers``). Workers
inherit it. :func:`activate` repairs a process that imported prometheus_client before the
variable was set (metrics created afterwards use the multi-process value class).

Dead workers: their counters and histograms must keep counting in the totals (a restart
must not make ``requests_total`` go down), while their ``live*`` gauges (active
requests) must disappear. :func:`child_exit` does that for gunicorn; uvicorn restarts
workers without a hook, so the endpoint also removes live gauges of processes that no
longer exist at every scrape (:func:`collect_dead`).

gunicorn (``gunicorn.conf.py``)::

    from surefoot.metrics.multiprocess import on_starting, child_exit

uvicorn (a launcher script; workers are spawned and re-import it, hence the guard)::

    from surefoot.metrics.multiprocess import run_uvicorn

    if __name__ == "__main__":
        run_uvicorn("service.main:app", workers=4, host="0.0.0.0", port=8000)
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "ENV",
    "directory",
    "is_active",
    "prepare",
    "activate",
    "mark_process_dead",
    "collect_dead",
    "registry",
    "on_starting",
    "child_exit",
    "run_uvicorn",
    "worker_count",
    "warn_if_unshared",
]

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = r"gauge_live\w*?_(\d+)\.db\Z"  # compiled when first used (re caches it)


def directory() -> str | None:
    """Return the multi-process directory from the environment, or ``None``."""
    # prometheus_client also honours the lower-case name
    return os.environ.get(ENV) or os.environ.get("prometheus_multiproc_dir") or None  # noqa: SIM112


def is_active() -> bool:
    """True when this process records metric values in the multi-process directory."""
    from .._compat.prometheus import multiprocess_values_active

    return directory() is not None and multiprocess_values_active()


def prepare(path: str | os.PathLike[str] | None = None, *, clear: bool = True) -> Path:
    """Create (and by default empty) the multi-process directory and export ``ENV``.

    Call it in the master process before any worker starts.

    Args:
        path: the directory (default: ``$PROMETHEUS_MULTIPROC_DIR``, else a new temporary
            directory).
        clear: remove the ``*.db`` files left by a previous run, whose counts would
            otherwise be added to this run's.

    Returns:
        The directory.

    Raises:
        ConfigurationError: ``path`` exists and is not a directory.
    """
    chosen = Path(path) if path is not None else Path(directory() or tempfile.mkdtemp(prefix="surefoot-prom-"))
    if chosen.exists() and not chosen.is_dir():
        raise ConfigurationError(f"{ENV}={chosen} exists and is not a directory; point it at a directory")
    chosen.mkdir(parents=True, exist_ok=True)
    if clear:
        for leftover in chosen.glob("*.db"):
            leftover.unlink()
    os.environ[ENV] = str(chosen)
    activate()
    return chosen


def activate() -> bool:
    """Switch this process to multi-process values if ``ENV`` is set but was not at import.

    Returns:
        True when the process now records values in the multi-process directory.
    """
    if directory() is None:
        return False
    from .._compat.prometheus import use_multiprocess_values

    use_multiprocess_values()
    return True


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Remove the live-gauge files of a dead worker (its counters keep counting)."""
    from prometheus_client import multiprocess

    target = path or directory()
    if target is None:
        return
    multiprocess.mark_process_dead(pid, target)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect_dead(path: str | None = None) -> list[int]:
    """Remove live-gauge files of processes that no longer exist; return their pids."""
    import glob

    target = path or directory()
    if target is None:
        return []
    dead = set()
    for name in glob.glob(os.path.join(target, "gauge_live*_*.db")):
        match = re.search(_LIVE_FILE, os.path.basename(name))
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        mark_process_dead(pid, target)
    return sorted(dead)


def registry(path: str | None = None) -> Any:
    """Return a fresh registry aggregating every worker's values (build one per scrape)."""
    from prometheus_client import CollectorRegistry, multiprocess

    target = path or directory()
    if target is None:
        raise ConfigurationError(f"multi-process metrics need {ENV}; call surefoot.metrics.multiprocess.prepare()")
    collect_dead(target)
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated, path=target)  # type: ignore[no-untyped-call]
    return aggregated


def _argv_workers(argv: list[str]) -> int:
    for i, arg in enumerate(argv):
        value = None
        if arg in ("--workers", "-w") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-w") and arg[2:].isdigit():
            value = arg[2:]
        if value is not None and value.strip().isdigit():
            return int(value)
    return 1


def _proc_cmdline(pid: int | str) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # spawned workers differ only in their pipe numbers: compare without digits
    return re.sub(rb"\d+", b"#", raw).decode("utf-8", "replace")


def _proc_ppid(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return None


def _siblings() -> int:
    """Processes started by this one's parent with the same command line (self included)."""
    import sys

    forked_worker = any(name.startswith("gunicorn.workers") for name in sys.modules)
    # A process started by multiprocessing (fork or spawn) has it imported already.
    multiprocessing = sys.modules.get("multiprocessing")
    started_by_multiprocessing = multiprocessing is not None and multiprocessing.parent_process() is not None
    if not started_by_multiprocessing and not forked_worker:
        return 1  # not a worker process of a pre-fork or spawning server
    own = _proc_cmdline(os.getpid())
    if own is None:
        return 1
    parent = os.getppid()
    count = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 1
    for entry in entries:
        if entry.isdigit() and _proc_ppid(entry) == parent and _proc_cmdline(entry) == own:
            count += 1
    return max(count, 1)


def worker_count(argv: list[str] | None = None) -> int:
    """Best estimate of how many worker processes serve this application (at least 1).

    The largest of: ``--workers N`` / ``-w N`` on the server's command line, the
    ``WEB_CONCURRENCY`` variable both uvicorn and gunicorn read, and (Linux) the processes the
    same parent started with the same command line.
    """
    import sys

    hints = [_argv_workers(list(sys.argv if argv is None else argv))]
    concurrency = os.environ.get("WEB_CONCURRENCY", "").strip()
    if concurrency.isdigit():
        hints.append(int(concurrency))
    hints.append(_siblings())
    return max(hints)


def warn_if_unshared(logger: Any = None) -> bool:
    """Log an ERROR when several workers run without the shared multi-process directory.

    Each worker then counts alone: every scrape sees one worker's counters, which seem to
    reset as the load balancer alternates. ``surefoot.install`` calls this at start-up.

    Returns:
        True when the warning was logged.

    Raises:
        ConfigurationError: ``PROMETHEUS_MULTIPROC_DIR`` names something that is not an
            existing directory (prometheus_client would fail on the first metric written).
    """
    shared = directory()
    if shared is not None and not os.path.isdir(shared):
        raise ConfigurationError(
            f"{ENV}={shared} is not an existing directory: create (and empty) it before the workers "
            "start, e.g. with surefoot.metrics.multiprocess.run_uvicorn(...) or the gunicorn hooks "
            "on_starting/child_exit, or unset it for a single process"
        )
    workers = worker_count()
    if workers <= 1:
        return False
    if directory() is not None and is_active():
        return False
    if logger is None:
        import structlog

        logger = structlog.get_logger("surefoot.metrics")
    reason = (
        f"{ENV} is not set" if directory() is None
        else f"{ENV} was set after prometheus_client was imported"
    )
    logger.error(
        "metrics_not_shared_between_workers",
        workers=workers,
        error_code="METRICS_NOT_SHARED",
        error_message=(
            f"{workers} worker processes but {reason}: each scrape sees one worker's counters, "
            "which look like resets. Start the server with "
            "surefoot.metrics.multiprocess.run_uvicorn(...) or gunicorn with "
            "surefoot.metrics.multiprocess.on_starting/child_exit (README: Several workers)."
        ),
    )
    return True


def on_starting(server: Any = None) -> None:
    """gunicorn ``on_starting`` hook: prepare the directory in the master."""
    prepare()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook: forget the live gauges of the worker that exited."""
    mark_process_dead(worker.pid)


def run_uvicorn(app: str, *, workers: int = 2, multiproc_dir: str | None = None, **options: Any) -> None:
    """Run ``uvicorn`` with ``workers`` processes and a freshly prepared directory.

    Args:
        app: the import string of the application (``"package.module:app"``).
        workers: number of worker processes.
        multiproc_dir: the directory (default: ``$PROMETHEUS_MULTIPROC_DIR`` or a new
            temporary one, removed on exit).
        **options: passed to ``uvicorn.run``.
    """
    from .._core.extras import require

    uvicorn = require("uvicorn", "fastapi")
    owned = multiproc_dir is None and directory() is None
    path = prepare(multiproc_dir)
    try:
        uvicorn.run(app, workers=workers, **options)
    finally:
        if owned:
            shutil.rmtree(path, ignore_errors=True)
