"""The dashboard's list in Chromium: ticking countdowns, search, tiles, staff only, axe."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from connections.models import Connection, RefreshExpiry
from tests.factories import ConnectionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fleet(transactional_db: None) -> None:
    """Rows in the states a person triages (also what the README's screenshot shows)."""
    now = timezone.now()
    absolute = {"provider__refresh_token_expiry": RefreshExpiry.ABSOLUTE}
    sliding = {"provider__refresh_token_expiry": RefreshExpiry.SLIDING}
    ConnectionFactory(
        name="Nightly analytics",
        authorized=True,
        provider__name="LinkedIn",
        account_label="marketing@acme.example",
        access_expires_at=now + timedelta(minutes=20),
        refresh_expires_at=now + timedelta(days=5, hours=3),
        last_refreshed_at=now - timedelta(minutes=40),
        status=Connection.Status.EXPIRING,
        **absolute,
    )
    ConnectionFactory(
        name="CRM sync",
        authorized=True,
        provider__name="Salesforce",
        account_label="ops@acme.example",
        status=Connection.Status.NEEDS_REAUTH,
        status_reason="the provider refused the refresh token (invalid_grant)",
    )
    backup = ConnectionFactory(
        name="Ads reporting (backup)",
        authorized=True,
        provider__name="Microsoft Entra ID",
        account_label="ads-backup@acme.example",
        last_refreshed_at=now - timedelta(minutes=5),
        **sliding,
    )
    ConnectionFactory(
        name="Ads reporting",
        authorized=True,
        provider__name="Microsoft Entra ID",
        account_label="ads@acme.example",
        backup=backup,
        refresh_expires_at=now + timedelta(days=88),
        last_refreshed_at=now - timedelta(minutes=12),
        **sliding,
    )


def test_a_countdown_ticks(fleet, staff_page, screenshot):
    staff_page.goto("/")
    countdown = staff_page.locator("td.access time[data-countdown]").first
    first = countdown.inner_text()
    assert first.startswith("in ")
    staff_page.wait_for_function(
        "([el, text]) => el.textContent !== text",
        arg=[countdown.element_handle(), first],
        timeout=2000,
    )
    screenshot(staff_page, "dashboard-list")


def test_search_and_a_status_tile_filter_the_list(fleet, staff_page, screenshot):
    staff_page.goto("/")
    staff_page.fill("#filter-q", "analytics")
    staff_page.click("form.filters button[type=submit]")
    rows = staff_page.locator("tbody tr")
    assert rows.count() == 1 and "Nightly analytics" in rows.inner_text()

    staff_page.goto("/")
    staff_page.click("a.tile[data-status=needs_reauth]")
    assert staff_page.locator("tbody tr").count() == 1
    assert "CRM sync" in staff_page.locator("tbody tr").inner_text()
    screenshot(staff_page, "dashboard-list-needs-reauth")


def test_a_non_staff_user_is_refused(page_for, screenshot, transactional_db):
    user = get_user_model().objects.create_user(username="visitor", password="pw")
    page = page_for(user)
    page.goto("/")
    assert "/admin/login/" in page.url
    screenshot(page, "dashboard-list-refused")


def test_axe_finds_no_serious_violation(fleet, staff_page, screenshot, serious_axe_violations):
    staff_page.goto("/")
    screenshot(staff_page, "dashboard-list-axe")
    assert serious_axe_violations(staff_page) == []


@pytest.mark.parametrize("path", ["/", "connection"])
def test_a_phone_reads_it_without_sideways_scrolling(fleet, staff_page, screenshot, path):
    """At 390 px the tables become cards: nothing is wider than the screen."""
    if path == "connection":
        path = f"/connections/{Connection.objects.get(name='Nightly analytics').slug}/"
    staff_page.set_viewport_size({"width": 390, "height": 844})
    staff_page.goto(path)
    overflow = staff_page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    screenshot(staff_page, "dashboard-phone" if path == "/" else "connection-page-phone")
    assert overflow <= 0, f"{path} is {overflow} px wider than a 390 px phone"
