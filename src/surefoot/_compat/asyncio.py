"""asyncio: the running loop and the current task in one C call each.

A :class:`~surefoot.resilience.Timeout` asks "which loop, which task?" on every protected
call; the public answers (``get_running_loop()`` raises when there is none,
``current_task()`` is a Python-level function) cost more than the rest of the timer.

* :data:`running_loop_or_none` is ``asyncio._get_running_loop``: the running loop or
  ``None``, in C. It is the function ``get_running_loop`` itself calls; where it is missing,
  a wrapper around the public ``get_running_loop`` takes its place.
* :func:`current_task_getter` returns a function of the loop giving its current task: a
  lookup in asyncio's own loop -> task table (``asyncio.tasks._current_tasks``) when the
  table is there, the public ``asyncio.current_task`` otherwise.

``tests/unit/test_compat.py`` checks both against the running interpreter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["running_loop_or_none", "current_task_getter", "fast_paths_available"]


def _public_running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


running_loop_or_none: Callable[[], asyncio.AbstractEventLoop | None] = getattr(
    asyncio, "_get_running_loop", _public_running_loop
)


def current_task_getter() -> Callable[[Any], Any]:
    """``get(loop) -> Task | None`` for the loop's current task."""
    table = getattr(asyncio.tasks, "_current_tasks", None)
    if isinstance(table, dict):
        return table.get
    return asyncio.current_task


def fast_paths_available() -> bool:
    """Whether both fast paths are in use (for the version test)."""
    return running_loop_or_none is not _public_running_loop and isinstance(
        getattr(asyncio.tasks, "_current_tasks", None), dict
    )
