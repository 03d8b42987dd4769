"""Buffered log lines: written at the time and size bounds, at once for errors, on every clean stop."""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from surefoot import Settings
from surefoot.errors import ConfigurationError
from surefoot.logging import _setup, configure_logging, flush_logs, get_logger, reset_logging
from surefoot.logging._setup import AccessLogger
from surefoot.logging._sink import MAX_BUFFER, Sink, bufferable


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder(io.StringIO):
    """A file-like stream with a descriptor (as a pipe or file has) that records its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink(clock: FakeClock) -> tuple[Sink, Recorder]:
    out = Recorder()
    sink = Sink(clock=clock, timer=False)
    sink.configure(out, 0.1)
    return sink, out


def test_lines_wait_until_the_time_bound(sink, clock):
    s, out = sink
    s.write("one")
    clock.now += 0.05
    s.write("two")
    with s.lock:
        assert s.flush_due() == pytest.approx(0.05)
    assert out.getvalue() == ""
    clock.now += 0.05  # the oldest line is 100 ms old
    with s.lock:
        assert s.flush_due() is None
    assert out.writes == ["one\ntwo\n"]  # one write for both


def test_the_time_bound_counts_from_the_oldest_line_of_each_batch(sink, clock):
    s, out = sink
    s.write("a")
    clock.now += 0.1
    with s.lock:
        s.flush_due()
    s.write("b")
    clock.now += 0.09
    with s.lock:
        assert s.flush_due() == pytest.approx(0.01)
    assert out.getvalue() == "a\n"


def test_the_size_bound_keeps_each_write_within_a_pipe_write(sink):
    s, out = sink
    line = "x" * 299
    for _ in range(40):
        s.write(line)
    assert out.writes, "4 KiB of lines are written without waiting for the timer"
    assert all(len(chunk) <= MAX_BUFFER for chunk in out.writes)
    assert all(chunk.endswith("\n") for chunk in out.writes)  # never a cut line
    s.flush()
    assert out.getvalue() == (line + "\n") * 40


def test_a_line_longer_than_the_buffer_is_written_alone_and_at_once(sink):
    s, out = sink
    s.write("short")
    s.write("y" * (MAX_BUFFER + 10))
    assert out.writes == ["short\n", "y" * (MAX_BUFFER + 10) + "\n"]


def test_an_error_line_is_written_at_once_with_the_lines_before_it(sink):
    s, out = sink
    s.write("info")
    s.write("error", urgent=True)
    assert out.writes == ["info\nerror\n"]


def test_a_terminal_or_a_stream_without_descriptor_is_never_buffered():
    class Tty(Recorder):
        def isatty(self) -> bool:
            return True

    assert not bufferable(Tty())
    assert not bufferable(io.StringIO())
    assert bufferable(Recorder())
    s = Sink(timer=False)
    for stream in (Tty(), io.StringIO()):
        s.configure(stream, 0.1)
        s.write("now")
        assert stream.getvalue() == "now\n"


def test_zero_delay_writes_each_line(clock):
    out = Recorder()
    s = Sink(clock=clock, timer=False)
    s.configure(out, 0)
    s.write("a")
    s.write("b")
    assert out.writes == ["a\n", "b\n"]


def test_reconfiguring_writes_pending_lines_to_the_old_stream_first(sink):
    s, out = sink
    s.write("old")
    other = Recorder()
    s.configure(other, 0.1)
    assert out.getvalue() == "old\n"
    s.write("new")
    s.flush()
    assert other.getvalue() == "new\n"


def test_a_replaced_stdout_gets_its_lines_at_once_after_the_buffered_ones(monkeypatch, clock):
    first = Recorder()
    monkeypatch.setattr("sys.stdout", first)
    s = Sink(clock=clock, timer=False)
    s.configure(None, 0.1)  # sys.stdout at each write
    s.write("buffered")
    second = io.StringIO()
    monkeypatch.setattr("sys.stdout", second)  # e.g. a test capturing output
    s.write("direct")
    assert first.getvalue() == "buffered\n"
    assert second.getvalue() == "direct\n"


def test_the_flusher_thread_writes_a_lone_line():
    # The real timer: a line written and nothing after it still reaches the stream.
    out = Recorder()
    s = Sink()
    s.configure(out, 0.001)
    s.write("alone")
    thread = s._thread
    assert thread is not None and thread.daemon
    for _ in range(2000):
        if out.getvalue():
            break
        thread.join(0.005)  # the thread never ends: this only waits for its write
    assert out.getvalue() == "alone\n"


# -- through configure_logging ---------------------------------------------------------------


@pytest.fixture
def logfile() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "out.log"


def test_configure_logging_buffers_a_file_and_flush_logs_writes_it(logfile):
    with open(logfile, "w") as stream:
        configure_logging(stream=stream, fmt="json", level="INFO")
        get_logger("app").info("first")
        AccessLogger().write("GET", "/x", 200, 0.5, 3)
        assert logfile.read_text() == ""
        flush_logs()
        events = [json.loads(line)["event"] for line in logfile.read_text().splitlines()]
        assert events == ["first", "http_request"]


def test_stdlib_structlog_and_access_lines_keep_their_order_and_errors_flush(logfile):
    with open(logfile, "w") as stream:
        configure_logging(stream=stream, fmt="json", level="INFO")
        get_logger("app").info("one")
        AccessLogger().write("GET", "/x", 200, 0.5, 3)
        logging.getLogger("lib").warning("three")
        assert logfile.read_text() == ""
        logging.getLogger("lib").error("four")  # an error: written at once, after the rest
        events = [json.loads(line)["event"] for line in logfile.read_text().splitlines()]
        assert events == ["one", "http_request", "three", "four"]
        AccessLogger().write("GET", "/x", 503, 0.5, 3)  # a 5xx access line is an error line
        assert len(logfile.read_text().splitlines()) == 5


def test_reset_and_reconfigure_write_what_is_buffered(logfile):
    with open(logfile, "w") as stream:
        configure_logging(stream=stream, fmt="json")
        get_logger("app").info("before reset")
        reset_logging()
        assert "before reset" in logfile.read_text()
        configure_logging(stream=stream, fmt="json")
        get_logger("app").info("before reconfigure")
        configure_logging(stream=io.StringIO(), fmt="json")
        assert "before reconfigure" in logfile.read_text()


def test_buffer_ms_zero_and_the_setting(logfile):
    with open(logfile, "w") as stream:
        configure_logging(stream=stream, fmt="json", buffer_ms=0)
        get_logger("app").info("now")
        assert "now" in logfile.read_text()
        configure_logging(Settings(log_buffer_ms=0), stream=stream, fmt="json")
        get_logger("app").info("also now")
        assert "also now" in logfile.read_text()
    assert _setup._SINK.buffered is None


def test_environment_setting(monkeypatch):
    monkeypatch.setenv("SUREFOOT_LOG_BUFFER_MS", "250")
    assert Settings().log_buffer_ms == 250
    with pytest.raises(ConfigurationError):
        configure_logging(stream=io.StringIO(), buffer_ms=-1)


def test_a_fork_does_not_repeat_buffered_lines(logfile):
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    with open(logfile, "w") as stream:
        configure_logging(stream=stream, fmt="json")
        get_logger("app").info("parent line")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            get_logger("app").info("child line")
            flush_logs()
            os._exit(0)
        os.waitpid(pid, 0)
        flush_logs()
    events = [json.loads(line)["event"] for line in logfile.read_text().splitlines()]
    assert sorted(events) == ["child line", "parent line"]


def test_paused_buffering_writes_at_once_until_resumed(sink):
    # What surefoot.install's lifespan does around the application's shutdown.
    s, out = sink
    s.write("before")
    s.pause(True)
    assert out.writes == ["before\n"]
    s.write("server's last line")
    assert out.writes[-1] == "server's last line\n"
    s.pause(False)
    s.write("buffered again")
    assert out.writes[-1] == "server's last line\n"
    s.flush()
    assert out.writes[-1] == "buffered again\n"


def test_lines_a_broken_stream_cannot_take_are_reported_not_swallowed(capfd) -> None:
    from surefoot.logging._sink import Sink, _register, flush_all

    class Broken:
        def fileno(self) -> int:
            return 1

        def isatty(self) -> bool:
            return False

        def write(self, text: str) -> int:
            raise OSError("pipe closed")

        def flush(self) -> None:
            return None

    sink = Sink(timer=False)
    sink.configure(Broken(), 0.1)  # type: ignore[arg-type]
    _register(sink)
    sink.write("a line")
    flush_all()
    assert "buffered log lines were lost: OSError: pipe closed" in capfd.readouterr().err
