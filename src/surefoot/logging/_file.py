"""An optional JSON log file beside the console, rotated by size or time.

Built on the standard library's ``RotatingFileHandler`` / ``TimedRotatingFileHandler`` with
one addition that makes them safe for several processes writing the same file (uvicorn or
gunicorn workers, a dispatcher): every line is written under an exclusive ``flock`` on a
sidecar ``<file>.lock``, and before writing a process checks whether the path still names the
file it has open. When another process rotated in the meantime, it reopens the new file (and,
for time rotation, takes the next rollover time from now) instead of rotating again.

Guarantee: each line is written whole, exactly once, into exactly one file, across
rotations, by any number of threads and processes on one machine (POSIX ``flock``; on a
platform without it, threads only). Lines in a file are in the order they were written.
What is not guaranteed: a line written by a process killed halfway through ``write`` (the OS
may keep part of it), and network file systems where ``flock`` is not honoured.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ConfigurationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LogFileSettings", "LogFile", "open_log_file"]


class LogFileSettings(BaseSettings):
    """``SUREFOOT_LOG_FILE*``: the optional JSON log file.

    Attributes:
        log_file: path of the file (unset: no file).
        log_file_rotate: ``size`` or ``time``.
        log_file_max_bytes: size rotation threshold (default 50 MiB).
        log_file_when: time rotation unit as the stdlib names it (``S``, ``M``, ``H``, ``D``,
            ``midnight``, ``W0``-``W6``).
        log_file_interval: how many units between time rotations.
        log_file_backup_count: rotated files kept.
    """

    model_config = SettingsConfigDict(env_prefix="SUREFOOT_", extra="ignore")

    log_file: str | None = None
    log_file_rotate: Literal["size", "time"] = "size"
    log_file_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    log_file_when: str = "midnight"
    log_file_interval: int = Field(default=1, ge=1)
    log_file_backup_count: int = Field(default=7, ge=0)


class _ProcessLock:
    """An exclusive ``flock`` on a sidecar file, opened once per process (not shared by fork)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        if fcntl is None:
            return
        if self._fd is None or self._pid != os.getpid():
            # After fork the child must not share the parent's open file description:
            # flock is held per description, so both would "hold" the lock at once.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        if fcntl is not None and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class _Follow:
    """Mixin for the stdlib rotating handlers: write under the process lock, follow rotations
    done by other processes."""

    baseFilename: str
    stream: Any
    _plock: _ProcessLock

    def emit(self, record: logging.LogRecord) -> None:
        with self._plock:
            self._follow()
            super().emit(record)  # type: ignore[misc]

    def _follow(self) -> None:
        stream = self.stream
        if stream is None:
            return
        try:
            on_disk = os.stat(self.baseFilename).st_ino
        except FileNotFoundError:
            on_disk = None
        if on_disk != os.fstat(stream.fileno()).st_ino:
            stream.close()
            self.stream = self._open()  # type: ignore[attr-defined]
            self._rotated_elsewhere()

    def _rotated_elsewhere(self) -> None:
        return None

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        plock = getattr(self, "_plock", None)  # absent when construction failed half-way
        if plock is not None:
            plock.close()


class _SizeRotating(_Follow, logging.handlers.RotatingFileHandler):
    pass


class _TimeRotating(_Follow, logging.handlers.TimedRotatingFileHandler):
    def _rotated_elsewhere(self) -> None:
        self.rolloverAt = self.computeRollover(int(time.time()))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_when(when: str) -> bool:
    # The units TimedRotatingFileHandler accepts (case-insensitive).
    unit = when.upper()
    return unit in ("S", "M", "H", "D", "MIDNIGHT") or (len(unit) == 2 and unit[0] == "W" and unit[1] in "0123456")


class LogFile:
    """Where :func:`surefoot.logging.configure_logging` writes JSON lines besides the console.

    Args:
        path: the log file.
        rotate: ``size`` (at ``max_bytes``) or ``time`` (every ``interval`` ``when``).
        max_bytes: size threshold.
        when: stdlib time unit (``S``, ``M``, ``H``, ``D``, ``midnight``, ``W0``-``W6``).
        interval: units between rotations.
        backup_count: rotated files kept (0: all, for time rotation; none for size).

    Raises:
        ConfigurationError: an unknown rotation, a size below 1024 bytes, an unknown time
            unit, an interval below 1, a negative backup count, or a directory that does not
            exist.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rotate: str = "size",
        max_bytes: int = 50 * 1024 * 1024,
        when: str = "midnight",
        interval: int = 1,
        backup_count: int = 7,
    ) -> None:
        target = Path(path)
        if not target.parent.is_dir():
            raise ConfigurationError(f"the log file's directory does not exist: {target.parent}")
        if rotate not in ("size", "time"):
            raise ConfigurationError(f"log file rotation must be 'size' or 'time'; got {rotate!r}")
        if rotate == "size" and (not _is_int(max_bytes) or max_bytes < 1024):
            raise ConfigurationError(
                f"max_bytes (SUREFOOT_LOG_FILE_MAX_BYTES) must be an integer of at least 1024; got {max_bytes!r}"
            )
        if not _is_int(backup_count) or backup_count < 0:
            raise ConfigurationError(
                f"backup_count (SUREFOOT_LOG_FILE_BACKUP_COUNT) must be an integer >= 0; got {backup_count!r}"
            )
        if rotate == "time":
            if not _is_int(interval) or interval < 1:
                raise ConfigurationError(
                    f"interval (SUREFOOT_LOG_FILE_INTERVAL) must be an integer >= 1; got {interval!r}"
                )
            if not isinstance(when, str) or not _valid_when(when):
                raise ConfigurationError(
                    "when (SUREFOOT_LOG_FILE_WHEN) must be S, M, H, D, midnight or W0-W6 (Monday-Sunday); "
                    f"got {when!r}"
                )
        handler: logging.FileHandler
        try:
            if rotate == "size":
                handler = _SizeRotating(str(target), maxBytes=max_bytes, backupCount=backup_count,
                                        encoding="utf-8")
            else:
                handler = _TimeRotating(str(target), when=when, interval=interval, backupCount=backup_count,
                                        encoding="utf-8", utc=True)
        except ValueError as exc:
            raise ConfigurationError(f"bad log file rotation setting: {exc}") from exc
        handler._plock = _ProcessLock(str(target) + ".lock")
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.path = target
        self.handler = handler
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        """Append one line (without its newline)."""
        record = logging.LogRecord("surefoot.file", logging.INFO, "", 0, line, None, None)
        self.handler.handle(record)

    def close(self) -> None:
        """Flush and close the file."""
        self.handler.close()


def open_log_file(path: str | os.PathLike[str] | None = None, **options: Any) -> LogFile | None:
    """A :class:`LogFile` from arguments, else from ``SUREFOOT_LOG_FILE*``; ``None`` when unset."""
    from .._core.settings import section

    if path is None:
        settings = section(LogFileSettings)
        if not settings.log_file:
            return None
        path = settings.log_file
        defaults = {
            "rotate": settings.log_file_rotate, "max_bytes": settings.log_file_max_bytes,
            "when": settings.log_file_when, "interval": settings.log_file_interval,
            "backup_count": settings.log_file_backup_count,
        }
        options = {**defaults, **options}
    return LogFile(path, **options)
