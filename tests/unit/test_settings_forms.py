"""Settings as people write them: comma lists, one-line errors, no tracebacks, no empty password."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest

import surefoot
from surefoot import ConfigurationError
from surefoot._core.settings import get_settings, load_settings
from surefoot.logging import reset_logging


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("10.0.0.0/8,127.0.0.1", ["10.0.0.0/8", "127.0.0.1"]),
        (" 10.0.0.0/8 , 127.0.0.1 ,", ["10.0.0.0/8", "127.0.0.1"]),
        ('["10.0.0.0/8", "::1"]', ["10.0.0.0/8", "::1"]),
        ("127.0.0.1", ["127.0.0.1"]),
        ("", []),
    ],
)
def test_list_settings_accept_commas_and_json(monkeypatch, raw, expected):
    monkeypatch.setenv("SUREFOOT_METRICS_ALLOW_IPS", raw)
    assert get_settings().metrics_allow_ips == expected


def test_every_list_setting_takes_the_comma_form(monkeypatch):
    monkeypatch.setenv("SUREFOOT_CORRELATION_HEADERS", "X-Request-ID,X-Amzn-Trace-Id")
    monkeypatch.setenv("SUREFOOT_ACCESS_LOG_SKIP_PATHS", "/livez,/readyz")
    monkeypatch.setenv("SUREFOOT_METRICS_EXCLUDE_PATHS", "/livez")
    settings = get_settings()
    assert settings.correlation_headers == ["X-Request-ID", "X-Amzn-Trace-Id"]
    assert settings.access_log_skip_paths == ["/livez", "/readyz"]
    assert settings.metrics_exclude_paths == ["/livez"]


@pytest.mark.parametrize(
    "variable, raw, expected_form",
    [
        ("SUREFOOT_METRICS_ALLOW_IPS", "10.0.0.0/33,127.0.0.1", "CIDR"),
        ("SUREFOOT_METRICS_ALLOW_IPS", '["10.0.0.0/8"', "JSON"),
        ("SUREFOOT_LOG_LEVEL", "verbose", "one of 'DEBUG'"),
        ("SUREFOOT_METRICS_ENABLED", "maybe", "true or false"),
        ("SUREFOOT_ACCESS_LOG_MAX_PATH", "lots", "an integer"),
        ("SUREFOOT_METRICS_PASSWORD", "", "non-empty password"),
        ("SUREFOOT_METRICS_PASSWORD", "   ", "non-empty password"),
        ("SUREFOOT_METRICS_PATH", "metrics", "a path starting with '/'"),
        ("SUREFOOT_LOG_FORMAT", "JSON", "one of 'auto', 'json', 'console'"),
        ("SUREFOOT_LOG_BUFFER_MS", "100ms", "an integer"),
        ("SUREFOOT_LOG_BUFFER_MS", "10001", "<= 10000"),
        ("SUREFOOT_LOG_MESSAGE_BODIES", "sometimes", "true or false"),
    ],
)
def test_a_settings_error_is_one_line_naming_variable_value_and_form(monkeypatch, variable, raw, expected_form):
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ConfigurationError) as info:
        get_settings()
    message = str(info.value)
    assert "\n" not in message
    assert message.count(variable) == 1 or variable == "SUREFOOT_METRICS_PASSWORD"
    assert expected_form in message
    if raw.strip() and "password" not in expected_form:
        assert repr(raw) in message or repr(raw.split(",")[0]) in message  # what it got, as written
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # no text twice (e.g. the allowed values both in pydantic's message and after it)
    words = message.split("expected", 1)[1]
    assert message.count(words) == 1
    assert "expected expected" not in message


def test_several_errors_share_the_line(monkeypatch):
    monkeypatch.setenv("SUREFOOT_LOG_LEVEL", "loud")
    monkeypatch.setenv("SUREFOOT_METRICS_ENABLED", "perhaps")
    with pytest.raises(ConfigurationError) as info:
        get_settings()
    message = str(info.value)
    assert "\n" not in message
    assert "SUREFOOT_LOG_LEVEL: got 'loud'" in message and "SUREFOOT_METRICS_ENABLED: got 'perhaps'" in message


def test_username_without_password_is_refused(monkeypatch):
    monkeypatch.setenv("SUREFOOT_METRICS_USERNAME", "prometheus")
    with pytest.raises(ConfigurationError, match="SUREFOOT_METRICS_PASSWORD: not set"):
        get_settings()


def test_empty_metrics_password_stops_install(monkeypatch):
    from fastapi import FastAPI

    reset_logging()
    monkeypatch.setenv("SUREFOOT_METRICS_USERNAME", "prometheus")
    monkeypatch.setenv("SUREFOOT_METRICS_PASSWORD", "")
    with pytest.raises(ConfigurationError, match="SUREFOOT_METRICS_PASSWORD"):
        surefoot.install(FastAPI(), log_options={"stream": io.StringIO(), "fmt": "json"})
    with pytest.raises(ConfigurationError, match="SUREFOOT_METRICS_PASSWORD"):
        load_settings(surefoot.Settings, metrics_username="p", metrics_password="")


def test_uncaught_settings_error_prints_one_line_without_traceback(tmp_path, subprocess_env):
    pytest.importorskip("fastapi", reason="the service in the subprocess is a FastAPI app")
    (tmp_path / "service.py").write_text(textwrap.dedent(
        """
        from fastapi import FastAPI
        import surefoot

        app = FastAPI()
        surefoot.install(app)
        """
    ))
    env = dict(subprocess_env, SUREFOOT_METRICS_ALLOW_IPS="10.0.0.0/8,not-an-ip")
    out = subprocess.run([sys.executable, "-c", "import service"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert lines[0].startswith("invalid surefoot settings: SUREFOOT_METRICS_ALLOW_IPS:")
    assert "'not-an-ip'" in lines[0]
    ok = subprocess.run([sys.executable, "-c", "import service; print(service.app.state.surefoot.settings.metrics_allow_ips)"],
                        cwd=tmp_path, env=dict(subprocess_env, SUREFOOT_METRICS_ALLOW_IPS="10.0.0.0/8,127.0.0.1"),
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines()[-1] == "['10.0.0.0/8', '127.0.0.1']"


def test_other_exceptions_keep_their_traceback(tmp_path, subprocess_env):
    script = "import surefoot._core.settings as c; c._install_excepthook(); raise KeyError('x')"
    out = subprocess.run([sys.executable, "-c", script], env=subprocess_env, capture_output=True, text=True,
                         timeout=60)
    assert "Traceback" in out.stderr and "KeyError" in out.stderr


def test_metrics_app_refuses_an_empty_password_argument():
    from surefoot.metrics import metrics_app

    with pytest.raises(ConfigurationError, match="empty"):
        metrics_app(username="prometheus", password="")


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TOKEN = st.text(
    alphabet=st.characters(blacklist_characters=",[]\"'\\", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1, max_size=20,
)


@given(st.lists(_TOKEN, max_size=6))
def test_comma_and_json_forms_read_back_the_same_list(values):
    import json

    from surefoot._core.settings import _split_list

    assert _split_list(",".join(values)) == values
    assert _split_list(" , ".join(values)) == values
    assert _split_list(json.dumps(values)) == values


@given(st.text(max_size=60))
def test_any_header_list_text_is_a_list_or_one_line_error(text):
    from surefoot._core.settings import Settings

    try:
        settings = load_settings(Settings, correlation_headers=text)
    except ConfigurationError as exc:
        assert "\n" not in str(exc) and "SUREFOOT_CORRELATION_HEADERS" in str(exc)
    else:
        assert isinstance(settings.correlation_headers, list)


@pytest.mark.parametrize(
    "raw, expected",
    [("true", True), ("false", False), ("1", True), ("0", False), ("yes", True), ("no", False),
     ("on", True), ("off", False), ("TRUE", True), ("Off", False)],
)
def test_booleans_take_every_documented_form(monkeypatch, raw, expected):
    monkeypatch.setenv("SUREFOOT_LOG_MESSAGE_BODIES", raw)
    monkeypatch.setenv("SUREFOOT_LOG_UNMASKED_PII", raw)
    monkeypatch.setenv("SUREFOOT_METRICS_ENABLED", raw)
    settings = get_settings()
    assert (settings.log_message_bodies, settings.log_unmasked_pii, settings.metrics_enabled) == (
        expected, expected, expected,
    )


@pytest.mark.parametrize("raw", ["debug", "Info", "WARNING", "error", "cRiTiCaL"])
def test_the_log_level_is_case_insensitive(monkeypatch, raw):
    monkeypatch.setenv("SUREFOOT_LOG_LEVEL", raw)
    assert get_settings().log_level == raw.upper()


@pytest.mark.parametrize(
    "variable, raw, expected_form",
    [
        ("SUREFOOT_HEALTH_DRAIN_SECONDS", "inf", "a finite number"),
        ("SUREFOOT_HEALTH_DRAIN_SECONDS", "nan", "a finite number"),
        ("SUREFOOT_HEALTH_DRAIN_SECONDS", "5s", "a number"),
        ("SUREFOOT_HEALTH_DRAIN_SECONDS", "-1", "a number >= 0"),
        ("SUREFOOT_HEALTH_CACHE_SECONDS", "inf", "a finite number"),
        ("SUREFOOT_HEALTH_CHECK_TIMEOUT", "0", "a number > 0"),
    ],
)
def test_a_bad_health_variable_stops_install_with_one_line(monkeypatch, variable, raw, expected_form):
    from fastapi import FastAPI

    monkeypatch.setenv(variable, raw)
    with pytest.raises(ConfigurationError) as info:
        surefoot.install(FastAPI())
    message = str(info.value)
    assert "\n" not in message
    assert f"{variable}: got {raw!r}; expected {expected_form}" in message


def test_settings_built_in_code_fail_like_the_environment(monkeypatch):
    from fastapi import FastAPI

    monkeypatch.setenv("SUREFOOT_LOG_LEVEL", "info")
    with pytest.raises(ConfigurationError) as info:
        surefoot.install(FastAPI(), settings=surefoot.Settings(log_level="verbose", log_buffer_ms=-1))
    assert str(info.value) == (
        "invalid surefoot settings: SUREFOOT_LOG_LEVEL: got 'verbose'; expected one of 'DEBUG', 'INFO', "
        "'WARNING', 'ERROR', 'CRITICAL'; SUREFOOT_LOG_BUFFER_MS: got -1; expected a number >= 0"
    )
    monkeypatch.setenv("SUREFOOT_METRICS_ENABLED", "maybe")
    with pytest.raises(ConfigurationError, match="SUREFOOT_METRICS_ENABLED: got 'maybe'; expected true or false"):
        surefoot.Settings(service_name="billing")
    monkeypatch.delenv("SUREFOOT_METRICS_ENABLED")
    assert surefoot.Settings(log_level="debug").log_level == "DEBUG"
