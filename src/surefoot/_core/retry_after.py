"""The one ``Retry-After`` parser (RFC 9110 section 10.2.3) used across surefoot.

The retry, the circuit breaker, the resilient HTTP client (through the retry) and the outbox's
HTTP sink all read a server's push-back with :func:`parse_retry_after`; what each does with the
delay (wait, stay open, reschedule) is theirs to decide. This module imports nothing from
surefoot.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re

__all__ = ["parse_retry_after"]

_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(
    value: str | bytes | float | None, *, now: float, max_delay: float = 86_400.0
) -> float | None:
    """Parse a ``Retry-After`` header value into a delay in seconds.

    Accepts delta-seconds (``"120"``, also ``"1.5"``; a number as such, e.g. an exception's
    ``retry_after`` attribute; bytes as read from raw headers) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, relative to ``now``). A date in the past gives
    ``0.0``; a delay beyond ``max_delay`` is capped to it. Never raises.

    Args:
        value: the header value, or ``None`` when absent.
        now: the current wall time, seconds since the epoch.
        max_delay: the largest delay returned.

    Returns:
        The delay in seconds, or ``None`` when the value is missing or unreadable.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if math.isnan(value):
            return None
        return min(max(0.0, float(value)), float(max_delay))
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS_RE.fullmatch(text):
        # A huge number would be slow or impossible to convert; it is "a long time" anyway.
        if len(text.split(".")[0]) > 12:
            return float(max_delay)
        return min(float(text), float(max_delay))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        delay = when.timestamp() - now
    except (OverflowError, ValueError, OSError):
        return None
    if delay != delay:  # NaN from an absurd ``now``
        return None
    return min(max(0.0, delay), float(max_delay))
