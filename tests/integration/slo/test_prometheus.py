"""The generated rules on a real Prometheus scraping a running surefoot service (uvicorn).

Windows are scaled by 1/60 (an hour becomes a minute, scrape every second), so the fast-burn
page fires within seconds of injected failures and clears about half a minute after.
"""

from __future__ import annotations

import base64
import itertools
import math
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from tests.integration.slo._prometheus import prometheus_bin

from surefoot import slo

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
USER, PASSWORD = "metrics", "s3cret-scrape"
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (label matchers, ranges, strings and grouping removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        token = match.group(0)
        rest = text[match.end():].lstrip()
        if token.lower() in _KEYWORDS or rest.startswith("("):
            continue
        names.add(token)
    return names


@pytest.fixture
def service(tmp_path, subprocess_env):
    port = _port()
    env = {**subprocess_env, "SLO_TEST_DB": f"sqlite:///{tmp_path / 'svc.sqlite3'}",
           "SUREFOOT_METRICS_USERNAME": USER, "SUREFOOT_METRICS_PASSWORD": PASSWORD,
           "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.integration.slo._service:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "service.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _get_ok(base + "/livez"), 60, "the service to start", 0.2)
        yield base, port
    finally:
        proc.terminate()
        proc.wait(20)


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def prometheus(tmp_path, service):
    base, port = service
    out = tmp_path / "deploy"
    from tests.integration.slo._slos import OBJECTIVES

    slo.generate(OBJECTIVES, out, targets=[f"127.0.0.1:{port}"], scrape_interval=1, scale=1 / 60)
    config_path = out / "prometheus/prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    password_file = tmp_path / "metrics_password"
    password_file.write_text(PASSWORD)
    config["scrape_configs"][0]["basic_auth"]["password_file"] = str(password_file)
    config.pop("alerting")
    config_path.write_text(yaml.safe_dump(config))
    prom_port = _port()
    proc = subprocess.Popen(
        [prometheus_bin("prometheus"), f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        cwd=out / "prometheus", stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"),
    )
    api = f"http://127.0.0.1:{prom_port}"
    try:
        _wait(lambda: _get_ok(api + "/-/ready"), 60, "Prometheus to be ready", 0.3)
        yield api, out, base
    finally:
        proc.terminate()
        proc.wait(20)


def _query(api: str, expr: str) -> list:
    body = httpx.get(api + "/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def _value(api: str, expr: str) -> float | None:
    result = _query(api, expr)
    return float(result[0]["value"][1]) if result else None


def _firing(api: str, alertname: str) -> bool:
    return bool(_query(api, f'ALERTS{{alertname="{alertname}",alertstate="firing"}}'))


def test_generated_rules_on_a_real_prometheus(prometheus):
    api, out, base = prometheus
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    client = httpx.Client(base_url=base, timeout=5)
    # The scrape works with basic auth (and only with it).
    assert client.get("/metrics").status_code == 401
    client.get("/health")
    _wait(lambda: _query(api, 'up{job="surefoot"} == 1'), 60, "the first successful scrape")

    # Every metric any rule or panel reads exists in the live scrape (or is recorded by a rule).
    rule_files = sorted((out / "prometheus/rules").glob("*.yml"))
    rules = [r for f in rule_files for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    exprs = [r["expr"] for r in rules]
    panel_exprs = []
    for board in (out / "grafana/dashboards").glob("*.json"):
        panel_exprs += [t["expr"] for p in yaml.safe_load(board.read_text())["panels"] for t in p["targets"]]
    assert panel_exprs

    def missing() -> set[str]:
        scrape = client.get("/metrics", headers={"authorization": auth}).text
        exported = {line.split()[2] for line in scrape.splitlines() if line.startswith("# TYPE")}
        absent = set()
        for expr in exprs + panel_exprs:
            for name in metric_names(expr) - recorded:
                family = re.sub(r"_(bucket|count|sum)$", "", name)
                if name not in exported and family not in exported:
                    absent.add(name)
        return absent

    # Sampled exporters (process gauges) register at their first sample: allow a few seconds.
    deadline = time.monotonic() + 15
    while missing() and time.monotonic() < deadline:
        time.sleep(1)
    assert not missing(), f"rules or panels read metrics no exporter provides: {sorted(missing())}"
    # Every panel query parses and evaluates on the real Prometheus.
    for expr in panel_exprs:
        _query(api, expr)

    # Event pairs: inbound call -> first SMS, counted by the sweeper, seen by Prometheus.
    # (The scaled 5-minute window is 5 s: keep pairs flowing while Prometheus catches up.)
    calls = itertools.count()

    def pairs_flowing() -> float | None:
        for _ in range(5):
            sid = f"CA{next(calls)}"
            assert client.post(f"/calls/{sid}").json() == {"started": True}
            assert client.post(f"/sms/{sid}").json() == {"finished": True}
        assert client.post("/sms/CA0").json() == {"finished": False}  # first finish only
        p95 = _value(api, "slo_first_sms_p95_seconds")
        ratio = _value(api, 'slo:sli_error:ratio_rate5m{slo="first_sms"}')
        ok = p95 is not None and not math.isnan(p95) and ratio == 0.0
        return p95 if ok else None

    p95 = _wait(pairs_flowing, 60, "slo_first_sms_p95_seconds and the pair ratio", 0.3)
    assert 0 < p95 < 5

    # Healthy traffic, then half the requests fail: the fast-burn page fires.
    for _ in range(30):
        client.get("/work")
    deadline = time.monotonic() + 90
    while not _firing(api, "ApiAvailabilityErrorBudgetBurnPage"):
        assert time.monotonic() < deadline, "the fast-burn page never fired"
        for _ in range(10):
            client.get("/work")
            client.get("/work", params={"fail": True})
        time.sleep(0.2)
    ratio = _value(api, 'slo:sli_error:ratio_rate5m{slo="api_availability"}')
    assert ratio is not None and 0.3 <= ratio <= 0.7, ratio
    burn = _value(api, 'slo:current_burn_rate:ratio{slo="api_availability"}')
    assert burn is not None and burn > 14.4
    assert _value(api, 'slo:error_budget:ratio{slo="api_availability"}') == pytest.approx(0.01)
    # /slo, evaluated in-process, agrees that the page tier burns.
    entry = next(o for o in client.get("/slo").json()["objectives"] if o["name"] == "api_availability")
    assert next(a for a in entry["alerts"] if a["tier"] == "page")["firing"] is True

    # Recovery: only good requests; the alert clears once the short windows are clean.
    deadline = time.monotonic() + 120
    while _firing(api, "ApiAvailabilityErrorBudgetBurnPage"):
        assert time.monotonic() < deadline, "the page did not clear after recovery"
        for _ in range(20):
            client.get("/work")
        time.sleep(0.5)
    assert _value(api, 'slo:sli_error:ratio_rate5m{slo="api_availability"}') == 0.0
