"""The demo: ``surefoot demo`` runs the missed-call reference service (examples/missed_call)
with its worker, a Twilio fake and simulated missed calls; ``surefoot demo --tour`` runs the
small tour app of surefoot's request path (:func:`create_app`)."""

from __future__ import annotations

import os
import sys

from ._app import create_app
from ._missed_call import examples_dir, run_missed_call

__all__ = ["create_app", "examples_dir", "run", "run_missed_call"]

_BANNER = """\
surefoot demo --tour — {service} on http://{host}:{port}  (logs: {log_format}; Ctrl-C to stop)

  curl -i 'http://{host}:{port}/hello?name=Ada'            a fast route, a business event in the log
  curl -i 'http://{host}:{port}/slow?seconds=1'            latency in the access log and histogram
  curl -i  http://{host}:{port}/fail                       500 problem+json; the stack trace is only in the log
  curl -i -X POST http://{host}:{port}/contacts -H 'content-type: application/json' \\
       -d '{{"name": "Ada", "email": "ada@example.com", "phone": "+14155552671"}}'
                                                           201; the log masks e-mail and phone
  curl -i -X POST http://{host}:{port}/contacts -H 'content-type: application/json' -d '{{"name": ""}}'
                                                           400 problem+json with the errors
  curl -i  http://{host}:{port}/contacts/999               404 problem+json (surefoot NotFoundError)
  curl     http://{host}:{port}/metrics                    Prometheus metrics
  curl    'http://{host}:{port}/metrics?format=json'       JSON summary: totals, error rate, top routes
  curl     http://{host}:{port}/health                     components, uptime, version (also /readyz, /livez)

  Send X-Correlation-ID: <id> to see it echoed and carried through every log line.
"""


def run(host: str = "127.0.0.1", port: int = 8000, *, drain_seconds: float | None = None) -> None:
    """Start the tour app on uvicorn and print where to look.

    Args:
        host: interface to bind.
        port: port to listen on.
        drain_seconds: after SIGTERM, report not-ready this long before shutting down
            (default: ``SUREFOOT_HEALTH_DRAIN_SECONDS``, else 0).

    Raises:
        MissingExtraError: FastAPI/uvicorn or SQLAlchemy is missing (``pip install 'surefoot[all]'``).
    """
    from .._core.extras import require
    from .._core.settings import Settings, load_settings

    uvicorn = require("uvicorn", "fastapi")
    overrides = {}
    if "SUREFOOT_SERVICE_NAME" not in os.environ:
        overrides["service_name"] = "surefoot-demo"
    if "SUREFOOT_DATABASE_URL" not in os.environ:
        overrides["database_url"] = "sqlite:///surefoot-demo.db"
    settings = load_settings(Settings, **overrides)
    app = create_app(settings, drain_seconds=drain_seconds)
    log_format = app.state.surefoot.logging.format if app.state.surefoot.logging else "yours"
    print(_BANNER.format(service=settings.service_name, host=host, port=port, log_format=log_format), flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # surefoot already routes uvicorn's loggers through its own format
        access_log=False,  # surefoot writes the access log
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    sys.stdout.flush()
