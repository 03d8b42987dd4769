from __future__ import annotations

import subprocess

import pytest

import surefoot

EXPORTED = {
    "install",
    "Installation",
    "get_logger",
    "Settings",
    "configure",
    "get_settings",
    "SurefootError",
    "ConfigurationError",
    "MissingExtraError",
    "HTTPError",
    "ValidationError",
    "AuthenticationError",
    "AuthorizationError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableError",
    "RateLimitError",
    "ExternalServiceError",
    "ServiceUnavailableError",
}


def test_exported_names_are_locked() -> None:
    # Adding to the top-level namespace is a decision: change this set on purpose.
    assert set(surefoot.__all__) == EXPORTED
    assert len(surefoot.__all__) == len(EXPORTED)
    for name in EXPORTED:
        assert getattr(surefoot, name) is not None


def test_exported_objects_have_docstrings() -> None:
    for name in EXPORTED:
        assert (getattr(surefoot, name).__doc__ or "").strip(), name


def test_import_surefoot_stays_light(subprocess_env, python_exe) -> None:
    code = (
        "import sys, surefoot, surefoot.logging, surefoot.health, surefoot.testing, surefoot.tracing\n"
        "heavy = ('fastapi', 'starlette', 'sqlalchemy', 'redis', 'nats', 'aio_pika', 'opentelemetry',"
        " 'httpx', 'uvicorn', 'psycopg', 'aiosqlite')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [python_exe, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"import surefoot loaded: {result.stdout.strip()}"


@pytest.mark.parametrize("variables", [{}, {"SUREFOOT_ENV": "production"}])
def test_install_with_defaults_imports_only_what_it_uses(subprocess_env, python_exe, variables) -> None:
    # The cold-start promise, without timing: an app that installs surefoot with default
    # settings (tracing off, no SLO objectives, no outbox, JSON logs, no log file) builds
    # its middleware stack and serves its lifespan without importing what it does not use,
    # and reads its settings once (sections without a variable of their prefix are not loaded).
    pytest.importorskip("fastapi")
    code = (
        "import asyncio, sys\n"
        "from fastapi import FastAPI\n"
        "import surefoot\n"
        "import surefoot._core.settings as settings_module\n"
        "loads = []\n"
        "load = settings_module.load_settings\n"
        "def counted(cls, **overrides):\n"
        "    loads.append(cls.__name__)\n"
        "    return load(cls, **overrides)\n"
        "settings_module.load_settings = counted\n"
        "app = FastAPI()\n"
        "surefoot.install(app)\n"
        "async def main():\n"
        "    async with app.router.lifespan_context(app):\n"
        "        app.build_middleware_stack()\n"
        "asyncio.run(main())\n"
        "unused = ('rich', 'sqlalchemy', 'httpx', 'surefoot.slo', 'surefoot.outbox',"
        " 'surefoot.flags', 'surefoot.webhooks', 'surefoot.idempotency', 'surefoot.resilience',"
        " 'surefoot.testing', 'surefoot.tracing._setup', 'surefoot.tracing._settings',"
        " 'surefoot.tracing._otel', 'surefoot.tracing._sentry', 'surefoot.tracing._tail',"
        " 'surefoot.logging._file', 'surefoot.logging._kinds', 'surefoot.metrics._db',"
        " 'surefoot.metrics._cache', 'surefoot.metrics._kpi', 'surefoot.metrics._llm',"
        " 'surefoot.health._settings', 'surefoot.health._results', 'surefoot.health._checks',"
        " 'surefoot.metrics._labels', 'surefoot._core.problem',"
        " 'multiprocessing', 'glob')\n"
        "loaded = sorted(m for m in sys.modules if any(m == u or m.startswith(u + '.') for u in unused))\n"
        "third = ('opentelemetry.sdk', 'sentry_sdk')\n"
        "loaded += sorted(m for m in sys.modules if m.startswith(third))\n"
        "print('loaded:' + ','.join(loaded))\n"
        "print('settings:' + ','.join(loads))\n"
    )
    # default settings: no SUREFOOT_* variable, and a single process (no multi-process directory)
    env = {
        k: v for k, v in subprocess_env.items()
        if not k.upper().startswith("SUREFOOT_") and k.upper() != "PROMETHEUS_MULTIPROC_DIR"
    } | variables
    result = subprocess.run(
        [python_exe, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    line = [text for text in result.stdout.splitlines() if text.startswith("loaded:")]
    assert line == ["loaded:"], f"install with defaults imported: {line}"
    loads = [text for text in result.stdout.splitlines() if text.startswith("settings:")]
    assert loads == ["settings:Settings"], f"install with defaults loaded: {loads}"
