"""Where rendered log lines go: one sink for every path, so lines never interleave or reorder.

Unbuffered, each line is written and flushed at once (one ``write`` system call per line).

Buffered (``SUREFOOT_LOG_BUFFER_MS`` > 0 and the stream a file or pipe, not a terminal), lines
are joined and written together, which saves a system call per line; the bounds are:

* **time**: a line waits at most ``delay`` seconds: a flusher thread writes the buffer when
  its oldest line is that old (the thread sleeps while the buffer is empty);
* **size**: the buffer is written before it would exceed :data:`MAX_BUFFER` characters, so
  one write stays within what a pipe takes in one piece (``PIPE_BUF``, 4 KiB) for ASCII
  lines, and workers sharing a pipe never interleave inside a line;
* **urgency**: an ``error`` or ``critical`` line is written at once, with everything before it;
* **clean stops**: :func:`flush` (lifespan shutdown, ``configure_logging``,
  ``reset_logging``), interpreter exit (``atexit``, so ``sys.exit`` and a SIGTERM handled by
  the server too) and ``fork`` (the child never repeats the parent's lines) write the buffer.

A crash that skips all of that (SIGKILL, ``os._exit``, a segfault) loses at most the lines of
the last ``delay`` seconds, and never more than :data:`MAX_BUFFER` characters of them.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

__all__ = ["Sink", "MAX_BUFFER", "bufferable"]

#: The most characters held before a write (a pipe takes up to 4096 bytes in one piece).
MAX_BUFFER = 4096


def bufferable(stream: Any) -> bool:
    """Whether lines for ``stream`` may be buffered: a file or pipe, not a terminal.

    A stream without a file descriptor (``io.StringIO``, a test's capture) is written line by
    line: whoever reads it expects each line when it is logged.
    """
    try:
        stream.fileno()
        return not stream.isatty()
    except (AttributeError, OSError, ValueError):  # no descriptor, or a closed stream
        return False


class Sink:
    """The output of every log line (see the module docs).

    Args:
        stream: a text stream; ``None`` means ``sys.stdout`` at the time of each write.
        clock: monotonic seconds (injected by tests).
        timer: start the flusher thread on the first buffered line (tests that drive
            :meth:`flush_due` themselves turn it off).
    """

    __slots__ = ("stream", "lock", "file", "buffered", "lines", "size", "since", "delay", "clock",
                 "_timer", "_wake", "_thread", "_idle", "_paused", "_reported")

    def __init__(self, stream: IO[str] | None = None, *, clock: Callable[[], float] = time.monotonic,
                 timer: bool = True) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        #: the optional JSON log file (a :class:`~surefoot.logging._file.LogFile`)
        self.file: Any = None
        #: the stream lines are buffered for (``None``: unbuffered); a write for another
        #: stream (``sys.stdout`` replaced since) is not buffered
        self.buffered: Any = None
        self.lines: list[str] = []
        self.size = 0
        self.since = 0.0  # clock() when the oldest buffered line came
        self.delay = 0.0
        self.clock = clock
        self._timer = timer
        self._wake = threading.Condition(self.lock)
        self._thread: threading.Thread | None = None
        self._idle = False
        self._paused: Any = None  # the stream buffering is paused for
        self._reported = False  # a failed write was reported since the last configure()

    def configure(self, stream: IO[str] | None, delay: float) -> None:
        """Write what is buffered, then send lines to ``stream``, buffered for ``delay`` seconds.

        ``delay`` 0 (or a terminal, or a stream without a file descriptor) writes each line at once.
        """
        with self.lock:
            self._flush_locked()
            self.stream = stream
            target = stream if stream is not None else sys.stdout
            self.delay = delay
            self.buffered = target if delay > 0 and bufferable(target) else None
            self._paused = None
            self._reported = False
        if self.buffered is not None:
            _register(self)

    def write(self, line: str, urgent: bool = False) -> None:
        """Write one rendered line (without its newline); ``urgent`` writes it at once."""
        self.write_text(line + "\n", urgent)
        if self.file is not None:
            self.file.write_line(getattr(line, "json", line))

    def write_text(self, text: str, urgent: bool = False) -> None:
        """:meth:`write` for a line that ends with its newline, without the log file."""
        stream = self.stream if self.stream is not None else sys.stdout
        with self.lock:
            if stream is self.buffered:
                self.append(text)
                if urgent:
                    self._flush_locked()
            else:
                if self.lines:
                    self._flush_locked()  # lines buffered for a previous stream go first
                try:
                    stream.write(text)
                    stream.flush()
                except (OSError, ValueError) as exc:  # a closed stream, a pipe nobody reads
                    self._lost(exc, False)

    def append(self, text: str) -> None:
        """Buffer ``text`` (a line with its newline); the caller holds :attr:`lock`."""
        lines = self.lines
        size = self.size + len(text)
        if lines and size > MAX_BUFFER:
            self._flush_locked()
            size = len(text)
        lines.append(text)
        self.size = size
        if size >= MAX_BUFFER:
            self._flush_locked()
        elif len(lines) == 1:
            self.since = self.clock()
            if self._idle:
                self._idle = False
                self._wake.notify()
            elif self._thread is None and self._timer:
                self._start()

    def flush(self) -> None:
        """Write every buffered line now."""
        with self.lock:
            self._flush_locked()

    def pause(self, paused: bool) -> None:
        """Write the buffer and write each line at once from now on (``True``), or buffer again.

        An application's shutdown pauses buffering: the server may end the process without
        running ``atexit`` (uvicorn re-raises SIGTERM), and its last lines come after the
        application's shutdown.
        """
        with self.lock:
            if paused:
                self._flush_locked()
                if self.buffered is not None:
                    self._paused, self.buffered = self.buffered, None
            elif self._paused is not None:
                self.buffered, self._paused = self._paused, None

    def flush_due(self) -> float | None:
        """Write the buffer if its oldest line waited ``delay``; the caller holds :attr:`lock`.

        Returns:
            Seconds until the buffer is due, or ``None`` when it is empty.
        """
        if not self.lines:
            return None
        wait = self.since + self.delay - self.clock()
        if wait > 0:
            return wait
        self._flush_locked()
        return None

    def _flush_locked(self) -> None:
        lines = self.lines
        if not lines:
            return
        data = "".join(lines)
        lines.clear()
        self.size = 0
        stream = self.buffered if self.buffered is not None else (
            self.stream if self.stream is not None else sys.stdout
        )
        try:
            stream.write(data)
            stream.flush()
        except (OSError, ValueError) as exc:  # a closed stream, a pipe nobody reads
            self._lost(exc, True)

    def _lost(self, exc: BaseException, buffered: bool) -> None:
        # A log call never fails because its output cannot be written (the request that
        # logged must not): the lines are dropped, and the first loss is said on stderr.
        if not self._reported:
            self._reported = True
            _report_lost(exc, buffered)

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="surefoot-log-flush", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        with self.lock:
            while True:
                try:
                    wait = self.flush_due()
                except Exception as exc:  # a closed or broken stream: say so, and go on
                    _report_lost(exc)
                    wait = None
                if wait is None:
                    self._idle = True  # a writer wakes us when the buffer fills again
                    self._wake.wait()
                else:
                    self._wake.wait(wait)

    def after_fork(self) -> None:
        """In a forked child: new lock, no flusher thread yet (the parent's did not come along)."""
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._thread = None
        self._idle = False


_SINKS: list[Sink] = []


def _register(sink: Sink) -> None:
    # Registered once, when buffering is first turned on (nothing happens at import).
    if any(known is sink for known in _SINKS):
        return
    if not _SINKS:
        atexit.register(flush_all)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=flush_all, after_in_child=_after_fork)
    _SINKS.append(sink)


def flush_all() -> None:
    """Write every buffered line of every sink (at exit, before a fork)."""
    for sink in _SINKS:
        try:
            sink.flush()
        except Exception as exc:  # at exit a closed stream must not hide the real error
            _report_lost(exc)


def _report_lost(exc: BaseException, buffered: bool = True) -> None:
    """Say on the process's original stderr that (buffered) lines could not be written."""
    stderr = sys.__stderr__
    if stderr is not None:
        what = "buffered log lines" if buffered else "log lines"
        try:
            stderr.write(f"surefoot: {what} were lost: {type(exc).__name__}: {exc}\n")
            stderr.flush()
        except (OSError, ValueError):  # stderr is gone too: nothing is left to tell
            return


def _after_fork() -> None:
    for sink in _SINKS:
        sink.after_fork()
