"""Small helpers shared by the benchmarks: interleaved timing rounds and plain tables.

Variants are timed in interleaved rounds (A, B, C, A, B, C, ...) so that drift on a shared
machine (other processes, CPU frequency) hits every variant alike; the median of the rounds
is reported.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["median_rounds", "amedian_rounds", "table", "fmt"]


def median_rounds(
    variants: dict[str, Callable[[int], Any]],
    *,
    rounds: int,
    n: int,
    clock: Callable[[], float] = time.process_time,
) -> dict[str, float]:
    """Time ``fn(n)`` for each variant, ``rounds`` times interleaved; µs per item (median).

    ``clock`` defaults to CPU time of this process (see :func:`amedian_rounds`).
    """
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            gc.collect()
            start = clock()
            fn(n)
            samples[name].append((clock() - start) * 1e6 / n)
    return {name: statistics.median(values) for name, values in samples.items()}


async def amedian_rounds(
    variants: dict[str, Callable[[int], Awaitable[Any]]],
    *,
    rounds: int,
    n: int,
    clock: Callable[[], float] = time.process_time,
) -> dict[str, list[float]]:
    """Async twin of :func:`median_rounds`; returns every round's µs per item.

    The default clock is this process's CPU time: on a shared machine wall time also counts
    the moments the scheduler gave the CPU to someone else, which is noise, not cost.
    """
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            gc.collect()
            await asyncio.sleep(0)
            start = clock()
            await fn(n)
            samples[name].append((clock() - start) * 1e6 / n)
    return samples


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render a Markdown table (readable in a terminal, pasteable in a report)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("| " + " | ".join(c.rjust(w) if index else c.ljust(w) for c, w in zip(row, widths, strict=False)) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
