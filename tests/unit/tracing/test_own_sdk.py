"""An application that configured OpenTelemetry's SDK itself, without ``setup_tracing``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("starlette")

OWN_SDK_APP = r"""
import json

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import surefoot
from surefoot import context, tracing

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)

with context.bound(correlation_id="corr-own", tenant_id="acme"), tracing.span("quote.price", sku="A1"):
    pass


async def quote(request):
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/quote", quote)])
surefoot.install(app, logging=False)
with TestClient(app) as client:
    assert client.get("/quote", headers={"x-correlation-id": "corr-q", "x-tenant-id": "t9"}).status_code == 200
spans = [{"name": s.name, "kind": s.kind.name, "scope": s.instrumentation_scope.name,
          "attributes": dict(s.attributes)} for s in memory.get_finished_spans()]
print("SPANS " + json.dumps(spans))
"""


def test_surefoots_spans_on_your_provider_carry_the_bound_ids(subprocess_env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-c", OWN_SDK_APP], env=subprocess_env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (line,) = [line for line in out.stdout.splitlines() if line.startswith("SPANS ")]
    own, server = json.loads(line.removeprefix("SPANS "))
    assert own["name"] == "quote.price" and own["scope"] == "surefoot"
    assert own["attributes"] == {"sku": "A1", "correlation_id": "corr-own", "tenant_id": "acme"}
    assert (server["name"], server["kind"]) == ("GET /quote", "SERVER")
    assert server["attributes"]["correlation_id"] == "corr-q"
    assert server["attributes"]["tenant_id"] == "t9"
