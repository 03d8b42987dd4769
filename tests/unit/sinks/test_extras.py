"""Sinks are optional: importing them costs nothing, a missing client names the extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from surefoot.errors import MissingExtraError
from surefoot.outbox import Sink

SINKS = [
    ("NatsSink", "nats", "nats", {}),
    ("RedisStreamSink", "redis.asyncio", "redis", {}),
    ("RabbitMQSink", "aio_pika", "rabbitmq", {}),
    ("HttpSink", "httpx", "http", {"endpoint": "https://example.com/hook", "secrets": "whsec_c2VjcmV0"}),
]


def test_importing_the_sinks_imports_no_broker_client(subprocess_env):
    code = (
        "import sys, surefoot.outbox.sinks as s\n"
        "from surefoot.outbox.sinks import NatsSink, RedisStreamSink, RabbitMQSink, HttpSink, parse_retry_after\n"
        "import surefoot.outbox as o\n"
        "assert (o.NatsSink, o.RedisStreamSink, o.RabbitMQSink, o.HttpSink) == "
        "(NatsSink, RedisStreamSink, RabbitMQSink, HttpSink)\n"
        "loaded = [m for m in ('nats', 'redis', 'aio_pika', 'aiormq', 'httpx') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert set(s.__all__) <= set(dir(s))\n"
    )
    subprocess.run([sys.executable, "-c", code], env=subprocess_env, check=True, timeout=60)


@pytest.mark.parametrize(("cls_name", "module", "extra", "kwargs"), SINKS)
def test_missing_client_names_the_extra(monkeypatch, cls_name, module, extra, kwargs):
    import surefoot.outbox.sinks as sinks

    cls = getattr(sinks, cls_name)
    # None in sys.modules makes "import module" fail like an uninstalled package
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=rf"surefoot\[{extra}\]") as info:
        cls(**kwargs)
    assert isinstance(info.value, ImportError)
    assert info.value.extra == extra


@pytest.mark.parametrize(("cls_name", "module", "extra", "kwargs"), SINKS)
def test_every_sink_follows_the_protocol(cls_name, module, extra, kwargs):
    import surefoot.outbox.sinks as sinks

    sink = getattr(sinks, cls_name)(**kwargs)
    assert isinstance(sink, Sink)
    assert sink.name == extra


def test_unknown_attribute_is_an_attribute_error():
    import surefoot.outbox.sinks as sinks

    with pytest.raises(AttributeError, match="KafkaSink"):
        sinks.KafkaSink  # noqa: B018
