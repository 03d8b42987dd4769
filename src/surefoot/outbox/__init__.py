"""Transactional outbox: write events in the business transaction, dispatch them at least once."""

from ._event import Event, RetryLater, Sink, SinkDisabled, SinkError

__all__ = ["Event", "Sink", "SinkError", "RetryLater", "SinkDisabled"]
