"""``surefoot demo``: the missed-call reference service with its worker, a Twilio fake and a
gentle stream of simulated missed calls, on embedded SQLite."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

_BANNER = """\
surefoot demo — the missed-call service (web + worker) on {database}
  Twilio fake (Messages API) at {twilio}; {rate:g} simulated missed call(s) per second

  open  {base}/status        live status: first-SMS latency, calls, messages, outbox, breaker, kill switch
        {base}/docs          the service's OpenAPI
        {base}/metrics       Prometheus metrics (try ?format=json)
        {base}/health        components (also /readyz, /livez)

  kill switch (admin token: {token}):
        toggle it on the status page, or
        surefoot flags set pause_outbound_sms on --url {sync_url} --reason "trying it"
        surefoot flags set pause_outbound_sms off --url {sync_url}
  a signed missed call by hand (the fake's account and token):
        python -c 'from surefoot.testing import CallSimulator; CallSimulator("{base}/webhooks/twilio/voice", \\
            "{auth_token}", account_sid="{account_sid}", to=["+14155550100"]).call(status="no-answer")'

  Ctrl-C stops everything.
"""


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def examples_dir() -> Path:
    """Where ``examples/missed_call`` is (``SUREFOOT_EXAMPLES_DIR``, else the source checkout)."""
    configured = os.environ.get("SUREFOOT_EXAMPLES_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parents[3] / "examples")
    for candidate in candidates:
        if (candidate / "missed_call" / "__init__.py").exists():
            return candidate
    raise ConfigurationError(
        "the demo service lives in surefoot's source tree (examples/missed_call): run `python3 dev.py demo` "
        "from a checkout, or set SUREFOOT_EXAMPLES_DIR to the folder that contains missed_call/"
    )


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another program already listens on, before starting anything."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}: {exc}; pass --host 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        if os.name == "posix":  # as uvicorn binds: a port in TIME_WAIT is free, a listener is not
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            raise ConfigurationError(
                f"port {port} on {host} is already in use: stop what listens there or pass --port "
                f"{port + 1 if port < 65535 else 8000}"
            ) from None


def run_missed_call(host: str = "127.0.0.1", port: int = 8000, *, rate: float = 0.5,
                    database_url: str | None = None, stop: threading.Event | None = None) -> None:
    """Start the reference service, the fake and the call stream; stop everything on Ctrl-C.

    Args:
        host, port: where the web process listens.
        rate: simulated missed calls per second.
        database_url: default ``DATABASE_URL``, else ``sqlite:///surefoot-demo.db`` (current folder).
        stop: an event that ends the demo like Ctrl-C (tests).
    """
    if rate <= 0:
        raise ConfigurationError("--rate must be positive (missed calls per second)")
    _check_port_free(host, port)
    folder = examples_dir()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    from missed_call.stack import Stack

    from ..testing import CallSimulator, TwilioFake

    url = database_url or os.environ.get("DATABASE_URL") or "sqlite:///surefoot-demo.db"
    fake = TwilioFake(latency=TwilioFake.lognormal(0.08, 0.25), error_rate=0.02, seed=None).start()
    stack = Stack(
        database_url=url, twilio_url=fake.url, account_sid=fake.account_sid, auth_token=fake.auth_token,
        host=host, port=port, admin_token=os.environ.get("ADMIN_TOKEN", "demo-admin-token"),
        env={"SUREFOOT_ACCESS_LOG_SKIP_PATHS": '["/status.json", "/slo", "/livez", "/readyz", "/health", "/metrics"]',
             "PYTHONPATH": str(folder)},
    )
    simulator: Any = None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the demo like Ctrl-C
    try:
        stack.start()
        stack.run("add-tenant", "acme", "+14155550100", "--business-name", "Acme Plumbing")
        simulator = CallSimulator(
            stack.base_url + "/webhooks/twilio/voice", fake.auth_token, account_sid=fake.account_sid,
            to=["+14155550100"], sms_url=stack.base_url + "/webhooks/twilio/sms",
        ).start(rate)
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
        sync_url = parsed.set(drivername=driver).render_as_string(hide_password=True)
        print(_BANNER.format(database=url, twilio=fake.url, rate=rate, base=stack.base_url,
                             token=stack.admin_token, sync_url=sync_url, auth_token=fake.auth_token,
                             account_sid=fake.account_sid), flush=True)
        waiter = stop or threading.Event()
        while not waiter.wait(0.5):
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"the {name} process exited with {process.returncode}")
    except KeyboardInterrupt:
        print("\nstopping: call stream, web, worker, Twilio fake", flush=True)
    finally:
        if simulator is not None:
            simulator.stop()
        stack.stop()
        fake.stop()
