"""Generated artefacts: promtool accepts and passes every rule file; lint; OpenSLO round trip."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from surefoot import slo
from surefoot.errors import ConfigurationError

from tests.integration.slo._prometheus import prometheus_bin

FIRST_SMS = slo.EventPair("first_sms", target=0.95, deadline=5.0, description="first SMS within 5 s of the inbound call")
BOOKING = slo.Latency("booking_post", target=0.95, threshold=0.5, route="/bookings", method="POST")
AVAIL = slo.Ratio("api_availability", target=0.999, route="*")
OBJECTIVES = [FIRST_SMS, BOOKING, AVAIL]


@pytest.fixture
def promtool():
    return prometheus_bin("promtool")


@pytest.mark.parametrize("scale", [1.0, 1 / 60])
def test_every_generated_rule_file_passes_promtool(tmp_path, promtool, scale):
    result = slo.generate(OBJECTIVES, tmp_path, scale=scale, scrape_interval=15 if scale == 1 else 1)
    rules = sorted((tmp_path / "prometheus/rules").glob("*.yml"))
    tests = sorted((tmp_path / "prometheus/tests").glob("*.yml"))
    assert [p.name for p in rules] == ["operational.rules.yml", "slo.rules.yml"]
    assert len(tests) == 2
    check = subprocess.run([promtool, "check", "rules", *rules], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run([promtool, "test", "rules", *[t.name for t in tests]], capture_output=True, text=True,
                         cwd=tmp_path / "prometheus/tests")
    assert run.returncode == 0, run.stdout + run.stderr
    config = subprocess.run([promtool, "check", "config", tmp_path / "prometheus/prometheus.yml"],
                            capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "basic_auth" in (tmp_path / "prometheus/prometheus.yml").read_text()
    assert result.findings == []


def test_generated_tests_fail_against_broken_rules(tmp_path, promtool):
    slo.generate([FIRST_SMS], tmp_path)
    path = tmp_path / "prometheus/rules/slo.rules.yml"
    path.write_text(path.read_text().replace("> 0.72)", "> 0.99)").replace("> 0.3)", "> 0.99)"))
    run = subprocess.run([promtool, "test", "rules", "slo.test.yml"], capture_output=True, text=True,
                         cwd=tmp_path / "prometheus/tests")
    assert run.returncode != 0 and "FirstSmsErrorBudgetBurnPage" in run.stdout + run.stderr


def test_rules_are_sloth_compatible_and_exact(tmp_path):
    files = slo.generate(OBJECTIVES, None).files
    rules = yaml.safe_load(files["prometheus/rules/slo.rules.yml"])
    records = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "28d"):
        assert f"slo:sli_error:ratio_rate{window}" in records
    assert {"slo:objective:ratio", "slo:error_budget:ratio", "slo:current_burn_rate:ratio",
            "slo:period_error_budget_remaining:ratio", "slo_first_sms_p95_seconds", "booking_post_p95_ms"} <= records
    text = files["prometheus/rules/slo.rules.yml"]
    assert "0.0009999" not in text and "vector(0.001)" in text
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert all(a["annotations"]["runbook_url"].startswith("docs/runbook.md#") for a in alerts)
    assert {a["labels"]["severity"] for a in alerts} == {"critical", "warning"}
    ops = yaml.safe_load(files["prometheus/rules/operational.rules.yml"])
    by_name = {r["alert"]: r for g in ops["groups"] for r in g["rules"]}
    assert by_name["FirstSmsP95Breach"]["expr"] == "slo_first_sms_p95_seconds > 5"
    assert by_name["FirstSmsP95Breach"]["for"] == "10m"
    assert by_name["BookingPostP95Breach"]["expr"] == "booking_post_p95_ms > 500"
    assert by_name["OutboxLagHigh"]["expr"] == "max(outbox_dispatch_lag_seconds) > 60"
    assert "* 60 > 10" in by_name["WebhookSignatureFailures"]["expr"] and by_name["WebhookSignatureFailures"]["for"] == "5m"
    assert {"CircuitBreakerOpen", "OutboxDeadLettersGrowing"} <= set(by_name)


def test_rules_leave_out_metrics_that_do_not_exist():
    files = slo.generate([FIRST_SMS], None, available={"slo_events_total", "slo_pair_duration_seconds"}).files
    ops = yaml.safe_load(files["prometheus/rules/operational.rules.yml"])
    assert [r["alert"] for g in ops["groups"] for r in g["rules"]] == ["FirstSmsP95Breach"]


def test_dashboards_are_grafana_json_with_provisioning():
    files = slo.generate(OBJECTIVES, None).files
    boards = {k: json.loads(v) for k, v in files.items() if k.startswith("grafana/dashboards/")}
    assert {k.rsplit("/", 1)[1] for k in boards} == {
        "slo-overview.json", "outbox-health.json", "webhook-health.json", "provider-errors.json",
        "http-red.json", "db-workers.json"}
    for board in boards.values():
        assert board["schemaVersion"] == 42 and board["panels"]
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "surefoot-prometheus" and panel["targets"][0]["expr"]
    assert "surefoot-prometheus" in files["grafana/provisioning/datasources/surefoot.yml"]


def test_lint_refuses_short_windows_and_warns_on_impossible_tiers_and_low_traffic(tmp_path):
    ninety = slo.Ratio("ninety", target=0.9)
    findings = slo.lint([ninety])
    assert any("can never fire" in f.message and f.level == "warning" for f in findings)
    files = slo.generate([ninety], None).files
    assert "NinetyErrorBudgetBurnPage" in files["prometheus/rules/slo.rules.yml"]  # the 6x condition remains
    assert "ratio_rate1h{sloth_id=\"surefoot-ninety\"} > 1.44" not in files["prometheus/rules/slo.rules.yml"]
    sparse = slo.Ratio("sparse", target=0.999, expected_events_per_hour=20)
    assert any("traffic too low" in f.message for f in slo.lint([sparse]))
    assert not any("traffic too low" in f.message for f in slo.lint(
        [slo.Ratio("busy", target=0.99, expected_events_per_hour=100_000)]))
    with pytest.raises(ConfigurationError, match="four scrape intervals"):
        slo.generate([sparse], tmp_path, scrape_interval=120)
    assert not (tmp_path / "prometheus").exists()


def test_openslo_round_trip():
    text = slo.to_openslo(OBJECTIVES)
    docs = list(yaml.safe_load_all(text))
    assert all(d["apiVersion"] == "openslo/v1" and d["kind"] == "SLO" for d in docs)
    assert docs[0]["spec"]["indicator"]["spec"]["ratioMetric"]["good"]["metricSource"]["type"] == "Prometheus"
    back = slo.from_openslo(text)
    for before, after in zip(OBJECTIVES, back, strict=True):
        assert type(after) is type(before)
        assert (after.name, after.target, after.threshold_seconds, after.description) == (
            before.name, before.target, before.threshold_seconds, before.description)
        assert getattr(after, "route", None) == getattr(before, "route", None)
        assert getattr(after, "method", None) == getattr(before, "method", None)
    assert slo.to_openslo(back) == text


def test_cli_generate_and_lint(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from surefoot.cli import _register, app

    module = tmp_path / "my_slos.py"
    module.write_text("from surefoot import slo\nFIRST = slo.EventPair('first_sms', target=0.95, deadline=5.0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _register()
    runner = CliRunner()
    out = tmp_path / "deploy"
    result = runner.invoke(app, ["observability", "generate", "--out", str(out), "-o", "my_slos"])
    assert result.exit_code == 0, result.output
    assert (out / "prometheus/rules/slo.rules.yml").exists()
    refused = runner.invoke(app, ["observability", "generate", "--out", str(tmp_path / "x"), "-o", "my_slos",
                                  "--scale", "0.001"])
    assert refused.exit_code == 1 and "four scrape intervals" in refused.output
    missing = runner.invoke(app, ["observability", "lint", "-o", "no_such_module_here"])
    assert missing.exit_code != 0 and "cannot import" in missing.output
    yaml_file = tmp_path / "slos.yaml"
    yaml_file.write_text(runner.invoke(app, ["slo", "openslo", "-o", "my_slos"]).output)
    assert runner.invoke(app, ["observability", "lint", "-o", str(yaml_file)]).exit_code == 0


def test_openslo_round_trip_gives_equal_objectives():
    declared = [
        *OBJECTIVES,
        slo.Ratio("checkout", target=0.99, route="/checkout", method="post", bad_statuses=(400, 599),
                  expected_events_per_hour=600, service="shop"),
        slo.Latency("search", target=0.9, threshold=0.25, errors_are_bad=False, p95_series="search_p95"),
        slo.EventPair("reply", target=0.99, deadline=30, p95_series="reply_p95_seconds"),
    ]
    assert slo.from_openslo(slo.to_openslo(declared)) == declared
    assert slo.from_openslo(slo.to_openslo([BOOKING])) != [slo.Latency("booking_post", target=0.95, threshold=1.0)]


FOREIGN = """
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-availability
spec:
  description: checkout answers
  service: shop
  indicator:
    metadata: {name: checkout-ok}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{code!~"5.."}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: http_requests_total}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{displayName: available, target: 0.995}]
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: search-latency
spec:
  service: shop
  indicator:
    metadata: {name: search-latency}
    spec: {thresholdMetric: {metricSource: {type: Prometheus, spec: {query: search_seconds}}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{displayName: fast, op: lte, value: 0.3, targetPercent: 95}]
"""


def test_openslo_written_elsewhere_loads():
    availability, latency = slo.from_openslo(FOREIGN)
    assert availability == slo.Ratio("checkout_availability", target=0.995, description="checkout answers",
                                     service="shop")
    assert latency == slo.Latency("search_latency", target=0.95, threshold=0.3, service="shop")


@pytest.mark.parametrize("text, names", [
    ("apiVersion: openslo/v1\nkind: SLO\nspec: {objectives: [\n", "not valid OpenSLO YAML"),
    ("- just\n- a list\n", "not an OpenSLO v1 document"),
    ("apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\nspec: {objectives: [{target: high}]}\n",
     "objectives[0].target must be a number"),
    ("apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\nspec: {}\n", "has no objectives[0].target"),
])
def test_bad_openslo_is_refused_with_what_to_fix(text, names):
    with pytest.raises(ConfigurationError) as caught:
        slo.from_openslo(text)
    assert names in str(caught.value)


@pytest.mark.parametrize("options, names", [
    ({"scale": 0}, "scale must be a positive number"),
    ({"scale": -1 / 60}, "scale must be a positive number"),
    ({"scrape_interval": 0}, "scrape_interval must be a positive number"),
])
def test_generate_refuses_non_positive_numbers_by_name(tmp_path, options, names):
    with pytest.raises(ConfigurationError, match=names):
        slo.generate(OBJECTIVES, tmp_path, **options)
    assert list(tmp_path.iterdir()) == []


def test_two_objectives_with_one_name_are_refused(tmp_path, monkeypatch):
    other = slo.EventPair("first_sms", target=0.99, deadline=2.0)
    with pytest.raises(ConfigurationError, match="repeated: first_sms"):
        slo.generate([FIRST_SMS, other], None)
    with pytest.raises(ConfigurationError, match="repeated: first_sms"):
        slo.lint([FIRST_SMS, other])
    module = tmp_path / "clashing_slos.py"
    module.write_text("from surefoot import slo\nA = slo.Ratio('api', target=0.99)\nB = slo.Ratio('api', target=0.9)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match="two different objectives named 'api'"):
        slo.collect_objectives("clashing_slos")


def test_cli_generate_into_a_file_says_to_give_a_directory(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from surefoot.cli import _register, app

    module = tmp_path / "file_out_slos.py"
    module.write_text("from surefoot import slo\nFIRST = slo.EventPair('first_sms', target=0.95, deadline=5.0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    target = tmp_path / "deploy"
    target.write_text("not a directory")
    _register()
    result = CliRunner().invoke(app, ["observability", "generate", "--out", str(target), "-o", "file_out_slos"])
    assert result.exit_code == 1 and "give a directory" in result.output
    assert target.read_text() == "not a directory"
