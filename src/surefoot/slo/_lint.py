"""Alert physics: refuse or warn about alerts that cannot work.

* ``error``: a rate window shorter than four scrape intervals (``rate()`` then sees one or two
  samples, or none, and the rule flaps or stays silent).
* ``warning``: a tier condition that can never fire (``factor × (1 − target) ≥ 1``: 14.4× on a
  90 % objective needs more than 100 % errors); it is not emitted.
* ``warning``: traffic too low for the objective: at ``expected_events_per_hour`` a single bad
  event in the short window of the fastest page condition already burns faster than its
  factor, so every stray failure pages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError
from ._objectives import Objective
from ._rules import RuleSettings, possible, threshold
from ._windows import WINDOWS, duration_text

__all__ = ["LintFinding", "lint"]


def _check_inputs(objectives: Sequence[Objective], scrape_interval: float, scale: float) -> None:
    for what, value in (("scrape_interval", scrape_interval), ("scale", scale)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ConfigurationError(f"{what} must be a positive number; got {value!r}")
    names = [o.name for o in objectives]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigurationError(
            f"objective names must be unique (each is the slo label of its rules); repeated: {', '.join(repeated)}"
        )


@dataclass(frozen=True)
class LintFinding:
    """One finding: ``level`` is ``"error"`` (generation refuses) or ``"warning"``."""

    level: str
    objective: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.objective}: {self.message}"


def lint(
    objectives: Sequence[Objective], *, scrape_interval: float = 15.0, settings: RuleSettings | None = None
) -> list[LintFinding]:
    """Check ``objectives`` against the tiers, the scrape interval and their expected traffic.

    Args:
        objectives: the objectives rules would be generated for.
        scrape_interval: Prometheus's scrape interval, seconds.
        settings: scale and tiers of the rules (default: production scale, workbook tiers).

    Returns:
        The findings, errors first.

    Raises:
        ConfigurationError: two objectives share a name, or the scrape interval or scale is
            not a positive number.
    """
    s = settings or RuleSettings()
    _check_inputs(objectives, scrape_interval, s.scale)
    findings: list[LintFinding] = []
    used = {w for t in s.tiers for c in t.conditions for w in (c.long, c.short)} | {"5m"}
    shortest = min(max(1, round(WINDOWS[w] * s.scale)) for w in used)
    if shortest < 4 * scrape_interval:
        findings.append(LintFinding(
            "error", "*",
            f"the {duration_text(shortest)} rate window is shorter than four scrape intervals "
            f"({duration_text(4 * scrape_interval)}): scrape more often or use longer windows",
        ))
    for o in objectives:
        for tier in s.tiers:
            for cond in tier.conditions:
                if not possible(cond, o):
                    findings.append(LintFinding(
                        "warning", o.name,
                        f"{tier.name} condition {cond.factor:g}× over {cond.long}/{cond.short} can never fire on a "
                        f"{o.target * 100:g} % objective (it needs an error ratio of "
                        f"{threshold(cond, o).normalize():f} > 1); it is not emitted",
                    ))
        rate = o.expected_events_per_hour
        page = next((t for t in s.tiers if t.name == "page"), None)
        if rate is not None and page is not None:
            live = [c for c in page.conditions if possible(c, o)]
            if live:
                fastest = max(live, key=lambda c: c.factor)
                events = rate * WINDOWS[fastest.short] / 3600
                if events < 1 or 1 / events > float(threshold(fastest, o)):
                    findings.append(LintFinding(
                        "warning", o.name,
                        f"traffic too low: about {events:.3g} events in {fastest.short}, so one bad event is an "
                        f"error ratio above {threshold(fastest, o).normalize():f} and pages; lower the target, "
                        "aggregate more traffic into the objective, or page on a count instead",
                    ))
    return sorted(findings, key=lambda f: (f.level != "error", f.objective))
