"""The OpenTelemetry Collector configuration equivalent to surefoot's sampling rule.

For teams that sample centrally: services send every span (``SUREFOOT_TRACING_SAMPLE_RATIO=1``,
``SUREFOOT_TRACING_TAIL_KEEP=false``) and the collector's ``tail_sampling`` processor keeps
100 % of traces with a span of status ``ERROR`` or an HTTP status >= 500, and a share of the
others (10 % by default).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["collector_config", "collector_config_yaml", "write_collector_config"]


def collector_config(
    *,
    sample_percentage: float = 10.0,
    decision_wait_seconds: float = 10.0,
    num_traces: int = 50_000,
    expected_new_traces_per_sec: int = 100,
    exporter_endpoint: str = "tempo:4317",
    exporter_insecure: bool = True,
) -> dict[str, Any]:
    """Return a Collector configuration (as a dict) with the ``tail_sampling`` policies.

    Policies (a trace is kept when any matches): ``errors`` (``status_code: ERROR``),
    ``http-server-errors`` (``http.response.status_code`` 500-599), ``healthy-sample``
    (probabilistic, ``sample_percentage``).

    Args:
        sample_percentage: share of the other traces kept, in percent.
        decision_wait_seconds: how long the collector waits for a trace's spans.
        num_traces: traces held in the collector's memory.
        expected_new_traces_per_sec: sizing hint for the collector.
        exporter_endpoint: where the collector sends kept traces (OTLP gRPC).
        exporter_insecure: plain-text gRPC to the backend.

    Raises:
        ConfigurationError: a percentage outside 0-100 or a non-positive size.
    """
    if not 0 <= sample_percentage <= 100:
        raise ConfigurationError(f"sample_percentage must be between 0 and 100; got {sample_percentage!r}")
    if decision_wait_seconds <= 0 or num_traces < 1 or expected_new_traces_per_sec < 1:
        raise ConfigurationError("decision_wait_seconds, num_traces and expected_new_traces_per_sec must be positive")
    return {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}}
        },
        "processors": {
            "tail_sampling": {
                "decision_wait": f"{decision_wait_seconds:g}s",
                "num_traces": num_traces,
                "expected_new_traces_per_sec": expected_new_traces_per_sec,
                "policies": [
                    {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
                    {
                        "name": "http-server-errors",
                        "type": "numeric_attribute",
                        "numeric_attribute": {"key": "http.response.status_code", "min_value": 500, "max_value": 599},
                    },
                    {
                        "name": "healthy-sample",
                        "type": "probabilistic",
                        "probabilistic": {"sampling_percentage": sample_percentage},
                    },
                ],
            },
            "batch": {},
        },
        "exporters": {"otlp": {"endpoint": exporter_endpoint, "tls": {"insecure": exporter_insecure}}},
        "service": {
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["tail_sampling", "batch"], "exporters": ["otlp"]}
            }
        },
    }


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    return text if _PLAIN.match(text) and text not in ("true", "false", "null", "yes", "no") else json.dumps(text)


def _yaml(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {'{}' if item == {} else '[]' if item == [] else _scalar(item)}")
    else:
        for item in value:
            if isinstance(item, dict) and item:
                nested = _yaml(item, indent + 1)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def collector_config_yaml(**options: Any) -> str:
    """:func:`collector_config` as the YAML the collector reads (same options)."""
    header = "# OpenTelemetry Collector: tail sampling equivalent to surefoot's in-process rule.\n"
    return header + "\n".join(_yaml(collector_config(**options), 0)) + "\n"


def write_collector_config(path: str | Path, **options: Any) -> Path:
    """Write :func:`collector_config_yaml` to ``path`` and return the file written.

    ``path`` is a directory (one that exists, or written with a trailing ``/``, or a new name
    without a suffix), which gets ``otel-collector.yaml`` and is created if missing, or a
    file name (``collector.yaml``).
    """
    text = str(path)
    target = Path(path)
    if target.is_dir() or text.endswith(("/", os.sep)) or not (target.suffix or target.exists()):
        target = target / "otel-collector.yaml"
    content = collector_config_yaml(**options)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    return target
