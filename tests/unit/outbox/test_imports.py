"""Importing the outbox must not pull in SQLAlchemy, jsonschema or OpenTelemetry."""

import subprocess
import sys


def test_outbox_and_testing_import_no_backend(subprocess_env):
    code = (
        "import sys, surefoot, surefoot.outbox, surefoot.testing\n"
        "from surefoot.outbox import add, emit, handler, Router, Event\n"
        "bad = [m for m in ('sqlalchemy', 'jsonschema', 'opentelemetry', 'psycopg') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], env=subprocess_env, check=True)


def test_public_names():
    from surefoot import outbox

    for name in outbox.__all__:
        assert getattr(outbox, name) is not None
