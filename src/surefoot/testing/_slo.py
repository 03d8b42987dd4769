"""Assert a service level objective in a test, from the declaration production uses."""

from __future__ import annotations

from typing import Any

__all__ = ["expect_slo", "SloExpectationError"]


class SloExpectationError(AssertionError):
    """The objective did not meet the expectation; the message shows the counts."""


def expect_slo(
    objective: Any,
    *,
    met: bool | None = True,
    min_sli: float | None = None,
    good: int | None = None,
    bad: int | None = None,
    total: int | None = None,
    min_events: int = 1,
    engine: Any = None,
) -> dict[str, Any]:
    """Assert what ``objective`` counted in this process (since it was bound).

    With ``engine``, event pairs are swept first (overdue pairs become bad, finished pairs
    are counted), so a test can assert pairs started and finished through the database.

    Args:
        objective: a :class:`surefoot.slo.Ratio`, ``Latency`` or ``EventPair``.
        met: ``True`` (default) asserts SLI ≥ target; ``False`` asserts it is below;
            ``None`` skips the check.
        min_sli: assert SLI ≥ this value.
        good, bad, total: assert exact counts.
        min_events: fewer events than this fail (an objective with no events proves nothing).
        engine: the database of an ``EventPair``: sweep before reading.

    Returns:
        ``{"good", "bad", "total", "sli", "target"}``.

    Raises:
        SloExpectationError: an expectation does not hold.
        TypeError: ``objective`` is not an objective (e.g. its name).
    """
    from ..slo import EventPair, Objective

    if not isinstance(objective, Objective):
        raise TypeError(
            f"expect_slo needs a surefoot.slo objective (Ratio, Latency or EventPair); got {objective!r}"
        )
    if engine is not None and isinstance(objective, EventPair):
        from ..slo import Sweeper

        Sweeper(engine, [objective]).sweep()
    g, b = objective.counts()
    n = g + b
    sli = g / n if n else None
    figures = {"good": g, "bad": b, "total": n, "sli": sli, "target": objective.target}
    shown = f"{objective.name}: good={g} bad={b} total={n} sli={sli} target={objective.target}"
    if n < min_events:
        raise SloExpectationError(f"{shown}: fewer than {min_events} events were counted")
    for name, want, have in (("good", good, g), ("bad", bad, b), ("total", total, n)):
        if want is not None and want != have:
            raise SloExpectationError(f"{shown}: expected {name}={want}")
    if min_sli is not None and (sli is None or sli < min_sli):
        raise SloExpectationError(f"{shown}: expected sli >= {min_sli}")
    if met is True and (sli is None or sli < objective.target):
        raise SloExpectationError(f"{shown}: objective not met")
    if met is False and sli is not None and sli >= objective.target:
        raise SloExpectationError(f"{shown}: expected the objective to be missed")
    return figures
