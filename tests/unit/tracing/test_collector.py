from __future__ import annotations

from pathlib import Path

import pytest

from surefoot import tracing
from surefoot.errors import ConfigurationError


def test_policies_keep_errors_and_5xx_and_sample_the_rest() -> None:
    config = tracing.collector_config(sample_percentage=10)
    tail = config["processors"]["tail_sampling"]
    by_type = {p["type"]: p for p in tail["policies"]}
    assert by_type["status_code"]["status_code"] == {"status_codes": ["ERROR"]}
    assert by_type["numeric_attribute"]["numeric_attribute"] == {
        "key": "http.response.status_code", "min_value": 500, "max_value": 599,
    }
    assert by_type["probabilistic"]["probabilistic"] == {"sampling_percentage": 10}
    assert config["service"]["pipelines"]["traces"]["processors"] == ["tail_sampling", "batch"]


def test_the_yaml_file_says_the_same_as_the_dict(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    written = tracing.write_collector_config(tmp_path, sample_percentage=5, exporter_endpoint="jaeger:4317")
    assert written == tmp_path / "otel-collector.yaml"
    loaded = yaml.safe_load(written.read_text())
    assert loaded == tracing.collector_config(sample_percentage=5, exporter_endpoint="jaeger:4317")
    assert tracing.write_collector_config(tmp_path / "c.yml").name == "c.yml"


@pytest.mark.parametrize("bad", [{"sample_percentage": 101}, {"num_traces": 0}, {"decision_wait_seconds": 0}])
def test_bad_options_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        tracing.collector_config(**bad)


def test_a_directory_that_does_not_exist_yet_gets_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    written = tracing.write_collector_config("deploy/")
    assert written == Path("deploy/otel-collector.yaml")
    assert (tmp_path / "deploy").is_dir()
    assert "tail_sampling" in (tmp_path / "deploy" / "otel-collector.yaml").read_text()
    assert tracing.write_collector_config(tmp_path / "ops" / "otel").parent == tmp_path / "ops" / "otel"
