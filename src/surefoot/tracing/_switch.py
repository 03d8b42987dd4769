"""Whether the environment asks for tracing or Sentry, without loading the tracing settings.

``surefoot.install`` calls :func:`tracing_requested` first: with no ``SUREFOOT_TRACING*`` and
no ``SUREFOOT_SENTRY*`` variable there is nothing to set up (tracing is off by default), so
neither the tracing settings nor the set-up code are imported.
"""

from __future__ import annotations

import os

__all__ = ["tracing_requested"]

_PREFIXES = ("SUREFOOT_TRACING", "SUREFOOT_SENTRY")


def tracing_requested() -> bool:
    """Whether a ``SUREFOOT_TRACING*`` or ``SUREFOOT_SENTRY*`` variable is set (any case)."""
    return any(name.upper().startswith(_PREFIXES) for name in os.environ)
