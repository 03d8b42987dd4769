from __future__ import annotations

import subprocess

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
