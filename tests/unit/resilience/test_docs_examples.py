"""The code examples of the resilience guides run as written (their placeholders filled in)."""

from __future__ import annotations

import asyncio
import pathlib
import re
import textwrap
from types import SimpleNamespace

import pytest

from surefoot.resilience import Bulkhead, CircuitBreaker

DOCS = pathlib.Path(__file__).resolve().parents[3] / "docs"


def _blocks(page: str) -> list[str]:
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)]


def _placeholders() -> dict[str, object]:
    """What the examples leave to the reader: a provider client, a callable, a feed ..."""
    feed = Bulkhead(1, name="feed")

    @feed
    async def read_feed():
        for last in (False, True, False):
            yield SimpleNamespace(last=last)

    scheduled: list[float] = []
    return {
        "client": SimpleNamespace(post=lambda url, json: {"sid": "SM1", "to": json["to"]}),
        "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
        "body": {"to": "+15551234567"},
        "schedule_retry": lambda after: scheduled.append(after),
        "api_function": lambda a, b: a + b,
        "arg1": 1,
        "arg2": 2,
        "breaker": CircuitBreaker("placeholder", metrics=False),
        "do_it": lambda: "done",
        "read_feed": read_feed,
        "contextlib": __import__("contextlib"),
        "_feed": feed,
    }


def _run(code: str, page: str) -> dict[str, object]:
    namespace = _placeholders()
    body = "\n".join("    " + line for line in code.splitlines())
    exec(compile(f"async def _example():\n{body}\n    return locals()\n", page, "exec"), namespace)
    result: dict[str, object] = asyncio.run(namespace["_example"]())  # type: ignore[operator]
    return {**namespace, **result}


@pytest.mark.parametrize("index", range(len(_blocks("resilience.md"))))
def test_resilience_guide_examples_run(index):
    code = _blocks("resilience.md")[index]
    if "aprovider_client" in code:
        pytest.importorskip("httpx", reason="needs surefoot[http]")
    done = _run(code, "resilience.md")
    if "twilio = Policy(" in code:
        assert done["twilio"].stages == ["retry", "rate_limit", "bulkhead", "breaker", "timeout"]
        assert done["send_sms"].policy is done["twilio"]
    if "aclosing" in code:
        assert done["_feed"].available == 1  # the slot came back at the break


@pytest.mark.parametrize("index", range(len(_blocks("circuit-breaker.md"))))
def test_circuit_breaker_guide_examples_run(index):
    code = _blocks("circuit-breaker.md")[index]
    if "RedisCircuitBreaker" in code:
        pytest.importorskip("redis", reason="needs surefoot[redis]")
    done = _run(code, "circuit-breaker.md")
    if "schedule_retry" in code:
        assert done["response"] == {"sid": "SM1", "to": "+15551234567"}
    if "do_it()" in code:
        assert done["result"] == "done"
