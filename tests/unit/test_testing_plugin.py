from __future__ import annotations

pytest_plugins = ["pytester"]


def test_plugin_fixtures(pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["surefoot.testing.pytest_plugin"]')
    pytester.makepyfile(
        """
        import structlog
        from surefoot._core.state import default_registry
        from surefoot.testing import metric_value


        def test_logs(surefoot_logs):
            structlog.get_logger("svc").info("hello", email="alice@example.com")
            assert surefoot_logs.one(event="hello")["email"] == "***.com"


        def test_registry(surefoot_registry):
            from prometheus_client import Counter

            assert default_registry() is surefoot_registry
            Counter("things", "things", registry=surefoot_registry).inc(2)
            assert metric_value(surefoot_registry, "things_total") == 2


        def test_clock(fake_clock):
            fake_clock.advance(3)
            assert fake_clock.monotonic() == 3
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=3)
