"""The suite without optional extras: what needs an uninstalled extra is skipped, by name.

``SUREFOOT_NO_EXTRAS=1`` marks a run in an environment that has surefoot and its test tools
but none of the optional extras (``.ci/run`` does one such run besides the full one). In that
run, and only there, a test module or test that stops on an optional backend that is not
installed — a ``ModuleNotFoundError`` for one of the extras' top-level modules, or surefoot's
own :class:`~surefoot.errors.MissingExtraError` — is reported as skipped with the module's
name. Everything else still fails, so the core must import and work without any extra.
"""

from __future__ import annotations

import os

import pytest

# Top-level modules that only the optional extras install (see pyproject.toml).
EXTRA_MODULES = frozenset(
    {
        "fastapi", "starlette", "uvicorn", "multipart", "python_multipart", "httpx", "anyio",
        "sqlalchemy", "aiosqlite", "psycopg", "psycopg_binary", "redis", "nats", "aio_pika",
        "aiormq", "greenlet", "opentelemetry", "jsonschema", "sentry_sdk", "grafana_foundation_sdk",
        "psutil", "yaml", "selenium", "playwright", "schemathesis", "alembic", "gunicorn",
    }
)


def active() -> bool:
    return os.environ.get("SUREFOOT_NO_EXTRAS", "") not in ("", "0", "false", "no")


def missing_extra(exc: BaseException | None) -> str | None:
    """The name of the missing optional module behind ``exc``, if that is what it is."""
    from surefoot.errors import MissingExtraError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MissingExtraError):
            return f"{exc.module} (surefoot[{exc.extra}])"
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            if exc.name.split(".")[0] in EXTRA_MODULES:
                return exc.name
        exc = exc.__cause__ or exc.__context__
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    if not active():
        return
    report = outcome.get_result()
    if report.failed and report.longrepr is not None:
        call = getattr(report, "_surefoot_call", None)
        text = str(report.longrepr)
        exc = call.excinfo.value if call is not None and call.excinfo else None
        name = missing_extra(exc)
        if name is None and "ModuleNotFoundError: No module named" in text:
            module = text.split("No module named", 1)[1].split("'")[1]
            if module.split(".")[0] in EXTRA_MODULES:
                name = module
        if name is not None:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), 0, f"Skipped: needs the optional {name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    if not active() or call.excinfo is None:
        return
    name = missing_extra(call.excinfo.value)
    if name is None:
        return
    report = outcome.get_result()
    if report.failed:
        report.outcome = "skipped"
        report.wasxfail = ""  # keeps terminal reporting consistent
        del report.wasxfail
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: needs the optional {name}")
