"""surefoot.testing.TwilioFake and CallSimulator over real HTTP: the Messages API's shape,
faults, signed callbacks."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import httpx
import pytest

from surefoot.testing import CallSimulator, TwilioFake
from surefoot.webhooks import TwilioVerifier


@pytest.fixture
def fake():
    with TwilioFake(seed=3) as twilio:
        yield twilio


def send(fake: TwilioFake, *, auth=None, timeout: float = 5.0, **form) -> httpx.Response:
    data = {"To": "+14155550123", "From": "+15005550006", "Body": "hello", **form}
    return httpx.post(fake.url + fake.messages_path, data=data, auth=auth or fake.auth, timeout=timeout)


def test_accepted_message_has_twilios_shape(fake: TwilioFake) -> None:
    response = send(fake)
    assert response.status_code == 201
    body = response.json()
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert body["status"] == "queued" and body["error_code"] is None and body["to"] == "+14155550123"
    assert body["uri"] == f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{body['sid']}.json"
    fetched = httpx.get(fake.url + body["uri"], auth=fake.auth)
    assert fetched.status_code == 200 and fetched.json()["sid"] == body["sid"]
    with_service = send(fake, From="", MessagingServiceSid="MG" + "0" * 32)
    assert with_service.json()["status"] == "accepted"
    assert fake.stats()["accepted"] == 2


@pytest.mark.parametrize(("form", "code"), [
    ({"To": "4155550123"}, 21211), ({"Body": ""}, 21602), ({"From": ""}, 21603),
])
def test_invalid_requests_get_twilio_error_json(fake: TwilioFake, form: dict, code: int) -> None:
    response = send(fake, **form)
    assert response.status_code == 400
    assert response.json() == {"code": code, "message": response.json()["message"],
                               "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": 400}


def test_basic_auth_is_required(fake: TwilioFake) -> None:
    response = send(fake, auth=(fake.account_sid, "wrong-token"))
    assert response.status_code == 401 and response.json()["code"] == 20003
    other_account = httpx.post(fake.url + "/2010-04-01/Accounts/AC" + "1" * 32 + "/Messages.json",
                               data={"To": "+14155550123", "From": "+1500", "Body": "x"}, auth=fake.auth)
    assert other_account.status_code == 401
    assert fake.stats()["accepted"] == 0


def test_opted_out_recipient_is_21610(fake: TwilioFake) -> None:
    fake.opted_out.add("+14155550999")
    response = send(fake, To="+14155550999")
    assert response.status_code == 400 and response.json()["code"] == 21610
    assert not fake.messages


def test_rate_limit_answers_429_with_retry_after() -> None:
    with TwilioFake(rate_limit=2) as fake:
        statuses = [send(fake) for _ in range(4)]
    assert [r.status_code for r in statuses] == [201, 201, 429, 429]
    assert statuses[2].headers["retry-after"] == "1" and statuses[2].json()["code"] == 20429


def test_faults_5xx_timeouts_and_lost_answers() -> None:
    with TwilioFake(error_rate=1.0, seed=1) as fake:
        failed = send(fake)
        assert failed.status_code == 500 and failed.json()["code"] == 20500
        assert not fake.messages
    with TwilioFake(timeout_rate=1.0, hang_seconds=2.0, seed=1) as fake:
        with pytest.raises(httpx.ReadTimeout):
            send(fake, timeout=0.3)
        assert fake.stats()["timeouts"] == 1 and not fake.messages
    with TwilioFake(error_rate=1.0, lost_fraction=1.0, seed=1) as fake:
        assert send(fake).status_code == 500
        assert len(fake.messages) == 1 and fake.messages[0].response_lost and fake.stats()["lost"] == 1
        assert send(fake).status_code == 500
        assert fake.stats()["duplicates"] == 1  # same To+Body accepted twice
    with TwilioFake(lost_response_rate=1.0, seed=1) as fake:
        with pytest.raises(httpx.RemoteProtocolError):
            send(fake)
        assert len(fake.messages) == 1 and fake.messages[0].response_lost


def test_fault_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        TwilioFake(error_rate=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        TwilioFake(error_rate=0.6, timeout_rate=0.6)


@pytest.mark.parametrize("options, names", [({"latency": -0.1}, "latency"), ({"rate_limit": 0}, "rate_limit"),
                                             ({"hang_seconds": -1}, "hang_seconds"),
                                             ({"callback_delay": -1}, "callback_delay")])
def test_other_fault_options_are_validated(options, names) -> None:
    with pytest.raises(ValueError, match=names):
        TwilioFake(**options)


@pytest.mark.parametrize("median, p95", [(0, 0.2), (0.3, 0.1), (-1, 1)])
def test_lognormal_needs_a_positive_median_below_its_p95(median, p95) -> None:
    with pytest.raises(ValueError, match="median"):
        TwilioFake.lognormal(median, p95)


def test_latency_distribution_is_applied() -> None:
    import time

    with TwilioFake(latency=0.2) as fake:
        started = time.perf_counter()
        assert send(fake).status_code == 201
        assert time.perf_counter() - started >= 0.2
    sample = TwilioFake.lognormal(0.05, 0.2)
    import random

    rng = random.Random(1)
    values = sorted(sample(rng) for _ in range(2000))
    assert 0.04 < values[1000] < 0.06 and 0.15 < values[1900] < 0.27


class _Receiver:
    """A tiny HTTP server recording signed callbacks (what a service would get)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((self.path, dict(parse_qsl(body.decode())), dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_status_callbacks_are_signed_and_in_order() -> None:
    receiver = _Receiver()
    try:
        with TwilioFake(callback_delay=0.0, failing_numbers={"+14155550777"}) as fake:
            callback = receiver.url + "/status?message_id=m1"
            sid = send(fake, StatusCallback=callback).json()["sid"]
            send(fake, To="+14155550777", StatusCallback=receiver.url + "/status?message_id=m2")
            assert fake.wait_for_callbacks(10)
        verifier = TwilioVerifier([fake.auth_token])
        ours = [(p, f, h) for p, f, h in receiver.received if f["MessageSid"] == sid]
        assert [f["MessageStatus"] for _, f, _ in ours] == ["sent", "delivered"]
        from surefoot.testing import form_body

        for path, form, headers in ours:  # a real verifier accepts the signatures
            verifier.verify(form_body(form), headers, url=receiver.url + path)
        failed = [f for _, f, _ in receiver.received if f["To"] == "+14155550777"]
        assert failed[-1]["MessageStatus"] == "failed" and failed[-1]["ErrorCode"] == "30003"
    finally:
        receiver.close()


def test_call_simulator_posts_signed_voice_callbacks_at_a_rate() -> None:
    import time

    receiver = _Receiver()
    try:
        sim = CallSimulator(receiver.url + "/voice", "token-123456", to=["+14155550100"], seed=4,
                            sms_url=receiver.url + "/sms")
        started = time.perf_counter()
        results = sim.run(10, rate=20)
        elapsed = time.perf_counter() - started
        assert [r.status_code for r in results] == [200] * 10 and 0.4 <= elapsed < 5
        verifier = TwilioVerifier(["token-123456"])
        from surefoot.testing import form_body

        for path, form, headers in receiver.received:
            verifier.verify(form_body(form), headers, url=receiver.url + path)
            assert form["CallStatus"] in ("no-answer", "busy", "failed") and form["To"] == "+14155550100"
            assert form["CallSid"].startswith("CA") and len(form["CallSid"]) == 34
        assert len({f["CallSid"] for _, f, _ in receiver.received}) == 10
        assert sim.sms("+14155550123", "+14155550100", "STOP").status_code == 200
        assert receiver.received[-1][1]["Body"] == "STOP"
    finally:
        receiver.close()
