"""Retry budgets: retries are allowed only while the dependency mostly succeeds.

A retry budget is a token bucket fed by successes, the scheme gRPC uses for retry
throttling (gRFC A6) and Finagle's ``RetryBudget`` approximates:

* the bucket starts full at ``max_tokens`` (default **10**);
* every failed attempt withdraws **1** token;
* every successful attempt deposits ``token_ratio`` tokens (default **0.1**), never beyond
  ``max_tokens``;
* a retry is allowed only while the balance is **above** ``max_tokens * threshold``
  (default threshold **0.5**, i.e. above 5 tokens).

So a healthy dependency can absorb a burst of about 5 failures with retries; once it keeps
failing, retries stop after that burst and resume at about one retry per 10 successes
(``1 / token_ratio``): in steady state retries add at most ~10 % load to a degraded
dependency instead of multiplying it by ``max_attempts``. The first attempt of a call is
never refused by the budget — only retries are.

Budgets are shared per name (:func:`get_retry_budget`), so every retry protecting the same
dependency draws from one bucket. Deposits cost one atomic C-level counter increment; the
balance is settled (lock-free) when a failure needs it: under heavy thread contention an
update may occasionally be lost, which only makes the budget approximate, never blocks a call.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from .._core.clock import SYSTEM_CLOCK
from .._core.state import STATE
from ..errors import ConfigurationError

__all__ = ["RetryBudget", "get_retry_budget", "reset_retry_budgets"]


class RetryBudget:
    """A token bucket fed by successes that decides whether a retry may happen.

    With the defaults the bucket holds 10 tokens; a failed attempt costs 1, a success earns
    0.1, and retries are allowed while more than 5 tokens remain: a failing dependency gets a
    burst of about 5 retries, then about one retry per 10 successes (≈10 % extra load).

    Args:
        name: the dependency it protects (shown in logs and events).
        max_tokens: capacity and initial balance (> 0).
        token_ratio: tokens deposited per success (> 0, <= max_tokens).
        threshold: retries are allowed while ``tokens > max_tokens * threshold`` (0 <= t < 1).
        min_retries_per_second: a floor (Finagle's ``minRetriesPerSec``): even with the bucket
            drained, this many retries per second are allowed, so a low-traffic dependency
            (too few successes to refill the bucket) can still retry. Default 0 (no floor).
        clock: time source of the floor.

    Raises:
        ConfigurationError: a number is out of range.
    """

    __slots__ = ("name", "max_tokens", "token_ratio", "threshold", "_tokens", "_floor", "_successes",
                 "_settled", "on_success", "min_retries_per_second", "_mono", "_reserve", "_reserve_at")

    def __init__(
        self,
        name: str = "default",
        *,
        max_tokens: float = 10.0,
        token_ratio: float = 0.1,
        threshold: float = 0.5,
        min_retries_per_second: float = 0.0,
        clock: Any = None,
    ) -> None:
        if not max_tokens > 0:
            raise ConfigurationError(f"RetryBudget max_tokens must be > 0; got {max_tokens!r}")
        if not 0 < token_ratio <= max_tokens:
            raise ConfigurationError(
                f"RetryBudget token_ratio must be > 0 and <= max_tokens ({max_tokens}); got {token_ratio!r}"
            )
        if not 0 <= threshold < 1:
            raise ConfigurationError(f"RetryBudget threshold must be in [0, 1); got {threshold!r}")
        if not min_retries_per_second >= 0:
            raise ConfigurationError(
                f"RetryBudget min_retries_per_second must be >= 0; got {min_retries_per_second!r}"
            )
        self.min_retries_per_second = float(min_retries_per_second)
        self._mono = (SYSTEM_CLOCK if clock is None else clock).monotonic
        self._reserve = max(1.0, self.min_retries_per_second)
        self._reserve_at = self._mono()
        self.name = name
        self.max_tokens = float(max_tokens)
        self.token_ratio = float(token_ratio)
        self.threshold = float(threshold)
        self._tokens = float(max_tokens)
        self._floor = self.max_tokens * self.threshold
        # Deposits are counted by a C-level counter (one atomic call, no Python frame, on every
        # success) and turned into tokens only when a failure needs the balance.
        self._successes = itertools.count()
        self._settled = 0
        self.on_success: Callable[[], object] = self._successes.__next__
        """Deposit ``token_ratio`` tokens (one successful attempt)."""

    def _settle(self) -> float:
        current = next(self._successes)  # also counts itself: skipped below
        deposits = current - self._settled
        self._settled = current + 1
        tokens = self._tokens
        if deposits:
            tokens += deposits * self.token_ratio
            if tokens > self.max_tokens:
                tokens = self.max_tokens
            self._tokens = tokens
        return tokens

    @property
    def tokens(self) -> float:
        """The current balance."""
        return self._settle()

    @tokens.setter
    def tokens(self, value: float) -> None:
        self._settle()
        self._tokens = min(self.max_tokens, max(0.0, float(value)))

    def on_failure(self) -> None:
        """Withdraw one token (one failed attempt)."""
        tokens = self._settle() - 1.0
        self._tokens = tokens if tokens > 0.0 else 0.0

    def can_retry(self) -> bool:
        """True while the balance is above the threshold (or the per-second floor allows one)."""
        if self._settle() > self._floor:
            return True
        rate = self.min_retries_per_second
        if rate <= 0:
            return False
        # Finagle's floor: a low-traffic dependency still gets a few retries per second.
        now = self._mono()
        reserve = min(max(1.0, rate), self._reserve + (now - self._reserve_at) * rate)
        self._reserve_at = now
        if reserve >= 1.0:
            self._reserve = reserve - 1.0
            return True
        self._reserve = reserve
        return False

    def reset(self) -> None:
        """Refill the bucket."""
        self._settle()
        self._tokens = self.max_tokens

    def __repr__(self) -> str:
        return f"RetryBudget({self.name!r}, tokens={self.tokens:.2f}/{self.max_tokens:g})"


_lock = threading.Lock()
_budgets: dict[str, RetryBudget] = {}


def get_retry_budget(name: str, **options: Any) -> RetryBudget:
    """Return the budget shared by every retry named ``name``, creating it on first use.

    Args:
        name: the dependency name (e.g. ``"twilio"``).
        **options: ``max_tokens``, ``token_ratio``, ``threshold``, ``min_retries_per_second``,
            ``clock`` — used only when the budget
            is created; later calls with different options get the existing budget.
    """
    budget = _budgets.get(name)
    if budget is None:
        with _lock:
            budget = _budgets.get(name)
            if budget is None:
                budget = _budgets[name] = RetryBudget(name, **options)
    return budget


def reset_retry_budgets() -> None:
    """Forget every shared budget (tests)."""
    with _lock:
        _budgets.clear()


STATE.own("resilience.retry_budgets", _budgets, reset=reset_retry_budgets)
