"""The status page in headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
it loads, its numbers move when calls arrive, and its protected toggle pauses sending.
A screenshot is kept in ``artifacts/`` (``SUREFOOT_TEST_ARTIFACTS`` to choose the folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .conftest import Service, new_number, wait_until

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("SUREFOOT_TEST_ARTIFACTS", Path(__file__).resolve().parents[3] / "artifacts"))


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        reason = "headless Chromium is not installed (bash .ci/browser installs chromium and chromium-driver)"
        if os.environ.get("SUREFOOT_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def test_status_page_moves_with_calls_and_toggles_the_kill_switch(start_service, browser) -> None:
    from selenium.webdriver.common.by import By

    svc: Service = start_service()
    number = new_number()
    tenant = svc.add_tenant(number)
    browser.get(svc.url + "/status")
    wait_until(lambda: _text(browser, "kill-state") == "sending", timeout=20, what="the page to load")
    assert _text(browser, "calls-missed") == "0" and "twilio: closed" in _text(browser, "breakers")

    sim = svc.simulator(number)
    for _ in range(3):
        sim.call(status="no-answer")
    wait_until(lambda: _text(browser, "calls-missed") == "3" and _text(browser, "sms-sent") == "3", timeout=20,
               what="the page's numbers to move")
    assert _text(browser, "p95").endswith(" s") and _text(browser, "samples") == "3"
    import httpx

    if httpx.get(svc.url + "/slo").status_code == 200:  # budget and burn come from the SLO engine
        wait_until(lambda: _text(browser, "budget").endswith("%") and _text(browser, "burn") != "–",
                   timeout=20, what="the error budget from /slo")
        assert _text(browser, "slo-source") == "surefoot.slo (/slo)"

    # a wrong token is refused and says so
    browser.find_element(By.ID, "admin-token").send_keys("wrong")
    browser.find_element(By.ID, "kill-toggle").click()
    wait_until(lambda: "401" in _text(browser, "error"), timeout=10, what="the refusal")
    assert _text(browser, "kill-state") == "sending"

    token = browser.find_element(By.ID, "admin-token")
    token.clear()
    token.send_keys(svc.stack.admin_token)
    browser.find_element(By.ID, "kill-toggle").click()
    wait_until(lambda: _text(browser, "kill-state") == "PAUSED", timeout=10, what="PAUSED")
    wait_until(lambda: all(w["paused"] for w in svc.status()["workers"]), timeout=10, what="the worker to pause")
    caller = new_number("+1650555")
    sim.call(from_=caller, status="busy")
    wait_until(lambda: _text(browser, "sms-pending") == "1" and _text(browser, "waiting-sms") == "1", timeout=20,
               what="the paused message on the page")
    assert "status page" in _text(browser, "kill-detail")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "status_page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    assert not [m for m in svc.fake.messages if m.to == caller]

    browser.find_element(By.ID, "kill-toggle").click()
    wait_until(lambda: _text(browser, "kill-state") == "sending", timeout=10, what="resume")
    wait_until(lambda: _text(browser, "sms-sent") == "4", timeout=20, what="the held SMS to go out")
    assert len([m for m in svc.fake.messages if m.to == caller]) == 1
    assert len(svc.messages(tenant)) == 4
