"""The connection page in Chromium: refresh without a reload, consent, accessibility."""

from typing import Any

import pytest
import requests

from connections.links import build_reauth_link
from connections.models import Connection
from tests.authserver.harness import AuthServer
from tests.factories import provider_for

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live_site: str, settings: Any) -> str:
    settings.SITE_URL = live_site  # links and the OAuth callback point at the live server
    return live_site


@pytest.fixture
def pending(site: str, auth_server: AuthServer) -> Connection:
    auth_server.reset()
    client_id, client_secret = auth_server.register_client(site + "/oauth/callback/")
    return Connection.objects.create(
        name="Analytics export",
        slug="analytics",
        provider=provider_for(auth_server, slug="dot-browser"),
        client_id=client_id,
        client_secret=client_secret,
        contact_email="owner@example.com",
    )


@pytest.fixture
def active(pending: Connection, auth_server: AuthServer) -> Connection:
    with requests.Session() as session:
        opened = session.get(build_reauth_link(pending), allow_redirects=False, timeout=10)
        callback = auth_server.consent(opened.headers["Location"], username="alice")
        assert session.get(callback, timeout=10).status_code == 200
    pending.refresh_from_db()
    assert pending.status == Connection.Status.ACTIVE
    return pending


def test_refresh_now_adds_an_attempt_without_reloading_the_page(staff_page, active, screenshot):
    page = staff_page
    page.goto("/connections/analytics/")
    page.evaluate("window.__noReload = 'still here'")
    assert page.locator("#timeline .event-refresh").count() == 0
    page.get_by_role("button", name="Refresh now").click()
    page.locator("#timeline .event-refresh").first.wait_for()
    assert "Refresh succeeded (forced)" in page.inner_text("#timeline")
    assert "Refreshed Analytics export" in page.inner_text("#feedback")
    assert page.evaluate("window.__noReload") == "still here"
    screenshot(page, "connection-page")


def test_reauthorize_completes_consent_and_the_status_turns_active(
    staff_page, pending, auth_server, screenshot
):
    page = staff_page
    page.goto("/connections/analytics/")
    page.get_by_role("button", name="Authorize in this browser").click()
    page.wait_for_url(auth_server.base_url + "/accounts/login/**")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", auth_server.passwords["alice"])
    page.click("button[type=submit]")
    page.get_by_role("heading", name="Connected").wait_for()
    screenshot(page, "connection-authorized")
    pending.refresh_from_db()
    assert pending.status == Connection.Status.ACTIVE
    page.goto("/connections/analytics/")
    assert "Active" in page.inner_text("#connection-state h1")


def test_the_detail_and_add_pages_have_no_serious_axe_violation(
    staff_page, active, serious_axe_violations, screenshot
):
    page = staff_page
    page.goto("/connections/analytics/")
    assert serious_axe_violations(page) == []
    page.goto("/connections/add/")
    page.select_option("select[name=preset]", "google")
    assert "7-day refresh tokens" in page.inner_text("#preset-note")
    assert serious_axe_violations(page) == []
    screenshot(page, "connection-add")
