"""In Chromium: the site runs as `localhost`, the person uses `127.0.0.1`, consent completes.

The live server answers on both names of the loopback; SITE_URL is `localhost`. The test
authorization server runs on `127.0.0.1` (another port: cookies ignore ports, so its own session
cookie lands on the `127.0.0.1` name too, as a provider's would never do; it does not matter here
because tokenadmin's session must be, and is, on `localhost`).
"""

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import override_settings

from connections.links import build_reauth_link
from connections.models import Connection
from tests.authserver.harness import AuthServer
from tests.factories import provider_for

pytestmark = pytest.mark.browser


@pytest.fixture
def names(live_site: str, settings: Any) -> tuple[str, str]:
    """(SITE_URL on `localhost`, the same server as `127.0.0.1`)."""
    site = live_site.replace("127.0.0.1", "localhost")
    settings.SITE_URL = site
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    return site, site.replace("localhost", "127.0.0.1")


@pytest.fixture
def pending(names: tuple[str, str], auth_server: AuthServer) -> Connection:
    auth_server.reset()
    client_id, client_secret = auth_server.register_client(names[0] + "/oauth/callback/")
    return Connection.objects.create(
        name="Analytics export",
        slug="analytics",
        provider=provider_for(auth_server, slug="dot-site-host-browser"),
        client_id=client_id,
        client_secret=client_secret,
    )


def consent_as_alice(page: Any, auth_server: AuthServer) -> None:
    page.wait_for_url(auth_server.base_url + "/accounts/login/**")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", auth_server.passwords["alice"])
    page.click("button[type=submit]")
    page.locator("section.card h1").wait_for()  # the result page, either way
    message = page.inner_text("section.card .message")
    assert page.inner_text("section.card h1") == "Connected", message


def test_a_link_made_for_127_0_0_1_completes_consent_on_localhost(
    names, pending, auth_server, page_for, screenshot
):
    site, other = names
    with override_settings(SITE_URL=other):
        link = build_reauth_link(pending)  # printed by a CLI that read another SITE_URL
    page = page_for(origin=other)
    page.goto(link)
    consent_as_alice(page, auth_server)
    screenshot(page, "site-host-connected")
    assert urlsplit(page.url).netloc == urlsplit(site).netloc
    pending.refresh_from_db()
    assert pending.status == Connection.Status.ACTIVE


def test_authorize_on_127_0_0_1_completes_consent_on_localhost(
    names, pending, auth_server, page_for, staff_user
):
    site, other = names
    page = page_for(staff_user, origin=other)
    page.goto("/connections/analytics/")
    page.get_by_role("button", name="Authorize in this browser").click()
    consent_as_alice(page, auth_server)
    assert page.url.startswith(site + "/oauth/callback/")
    pending.refresh_from_db()
    assert pending.status == Connection.Status.ACTIVE
