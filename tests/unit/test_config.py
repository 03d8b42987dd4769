import pytest

from surefoot import ConfigurationError
from surefoot._core.settings import configure, get_settings


def test_bad_env_value_names_variable_and_allowed_values(monkeypatch):
    monkeypatch.setenv("SUREFOOT_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigurationError) as info:
        get_settings()
    message = str(info.value)
    assert "SUREFOOT_LOG_FORMAT" in message
    assert "'json'" in message and "'console'" in message
    assert "'yaml'" in message


def test_env_values_are_read(monkeypatch):
    monkeypatch.setenv("SUREFOOT_LOG_LEVEL", "debug")
    monkeypatch.setenv("SUREFOOT_METRICS_ENABLED", "false")
    settings = get_settings()
    assert settings.log_level == "DEBUG"
    assert settings.metrics_enabled is False


def test_configure_overrides_environment(monkeypatch):
    monkeypatch.setenv("SUREFOOT_SERVICE_NAME", "from-env")
    assert configure(service_name="explicit").service_name == "explicit"
    assert get_settings().service_name == "explicit"


def test_bad_boolean_is_refused(monkeypatch):
    monkeypatch.setenv("SUREFOOT_METRICS_ENABLED", "maybe")
    with pytest.raises(ConfigurationError, match="SUREFOOT_METRICS_ENABLED"):
        get_settings()


def test_settings_default_factories_are_not_builtin_types() -> None:
    # pydantic inspects a default factory's signature when the class is built; for a builtin
    # type (list, dict) that parses its text signature, a cost paid by every ``import surefoot``.
    from surefoot import Settings

    builtins = [name for name, field in Settings.model_fields.items() if isinstance(field.default_factory, type)]
    assert builtins == []
    assert Settings().metrics_allow_ips == []


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), "soon", True])
@pytest.mark.parametrize("error", ["RateLimitError", "ServiceUnavailableError"])
def test_retry_after_must_be_a_finite_number_of_seconds(error, seconds):
    import surefoot

    with pytest.raises(ConfigurationError, match="retry_after must be a finite number of seconds"):
        getattr(surefoot, error)(retry_after=seconds)


@pytest.mark.parametrize("seconds, header", [(0, "0"), (0.2, "1"), (1, "1"), (1.5, "2"), (-3, "0")])
def test_retry_after_is_whole_seconds_rounded_up(seconds, header):
    import surefoot

    assert surefoot.RateLimitError(retry_after=seconds).headers["Retry-After"] == header
    assert surefoot.ServiceUnavailableError(retry_after=seconds).headers["Retry-After"] == header
