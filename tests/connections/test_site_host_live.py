"""End to end: the site runs under one host name, a person uses the other, consent completes.

The live server (pytest-django) listens on the loopback, so `localhost` and `127.0.0.1` both
reach it, as they do for `make run`. SITE_URL names one of them; the link was made for the
other, as the CLI made it from a stale `.env` (issue 9: "every later CLI call printed localhost
links"). The browser is a `requests.Session`: a real cookie jar that, like a browser, keeps a
cookie for the host name that set it and sends it to no other. Redirects are followed one by one
so each hop can be checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from connections.links import build_reauth_link
from connections.models import Connection
from tests.authserver.harness import AuthServer
from tests.factories import provider_for

TIMEOUT = 10
NAMES = ("localhost", "127.0.0.1")


@pytest.fixture(params=[NAMES, NAMES[::-1]], ids=["site-localhost", "site-127.0.0.1"])
def names(request: pytest.FixtureRequest, live_server: Any, settings: Any) -> tuple[str, str]:
    """(SITE_URL, the other name of the same server); SITE_URL set for the live server."""
    site_name, other_name = request.param
    port = urlsplit(live_server.url).port
    site, other = f"http://{site_name}:{port}", f"http://{other_name}:{port}"
    settings.SITE_URL = site  # the server thread reads the same settings
    settings.ALLOWED_HOSTS = list(NAMES)
    return site, other


@pytest.fixture
def connection(names: tuple[str, str], auth_server: AuthServer) -> Connection:
    site, _ = names
    auth_server.reset()
    client_id, client_secret = auth_server.register_client(site + "/oauth/callback/")
    return Connection.objects.create(
        name="Analytics export",
        slug="analytics",
        provider=provider_for(auth_server, slug="dot-site-host"),
        client_id=client_id,
        client_secret=client_secret,
    )


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def follow(browser: requests.Session, response: requests.Response, until: str) -> list[str]:
    """Follow redirects until one leaves for `until` (the provider); return every Location."""
    hops = []
    while response.status_code in (301, 302, 303, 307, 308):
        location = urljoin(response.url, response.headers["Location"])
        hops.append(location)
        if location.startswith(until):
            return hops
        response = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
    raise AssertionError(f"stopped at {response.status_code} {response.url}: {response.text[:500]}")


def cookie_hosts(browser: requests.Session) -> set[str]:
    # http.cookiejar files a dotless host name such as `localhost` under `localhost.local`.
    return {cookie.domain.removesuffix(".local") for cookie in browser.cookies}


def consent_and_return(browser, auth_server: AuthServer, authorize_url: str) -> requests.Response:
    callback = auth_server.consent(authorize_url, username="alice")
    return browser.get(callback, allow_redirects=False, timeout=TIMEOUT)


def test_a_link_made_for_the_other_host_name_completes_consent(
    names, connection, auth_server, browser
):
    site, other = names
    with override_settings(SITE_URL=other):
        link = build_reauth_link(connection)  # as the CLI printed it from a stale .env
    assert link.startswith(other + "/reauth/")

    opened = browser.get(link, allow_redirects=False, timeout=TIMEOUT)
    hops = follow(browser, opened, until=auth_server.authorize_url)
    finished = consent_and_return(browser, auth_server, hops[-1])

    # Without the redirect: 400, "This authorization was started in another browser".
    assert finished.status_code == 200, finished.text[:2000]
    assert "Analytics export is connected" in finished.text
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE
    assert connection.refresh_token
    # How: the link went to SITE_URL first, and the only session is SITE_URL's.
    assert hops[0].startswith(site + "/reauth/"), hops
    assert len(hops) == 2, hops
    assert finished.url.startswith(site + "/oauth/callback/")
    assert cookie_hosts(browser) == {urlsplit(site).hostname}


def log_in(browser: requests.Session, base: str, username: str, password: str) -> None:
    login = f"{base}/admin/login/"
    browser.get(login, timeout=TIMEOUT)
    token = browser.cookies.get(settings.CSRF_COOKIE_NAME, domain=_jar_domain(base))
    answer = browser.post(
        login,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 302, answer.text[:1000]


def _jar_domain(base: str) -> str:
    host = urlsplit(base).hostname or ""
    return host if "." in host else f"{host}.local"


def test_authorize_on_the_other_host_name_completes_consent(
    names, connection, auth_server, browser
):
    site, other = names
    get_user_model().objects.create_user("staff", password="pw-staff", is_staff=True)
    log_in(browser, other, "staff", "pw-staff")  # the dashboard is open on the other name
    page = browser.get(f"{other}/connections/analytics/", timeout=TIMEOUT)
    assert "Authorize in this browser" in page.text

    clicked = browser.post(
        f"{other}/connections/analytics/authorize/",
        headers={
            "X-CSRFToken": browser.cookies.get(settings.CSRF_COOKIE_NAME, domain=_jar_domain(other))
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    hops = follow(browser, clicked, until=auth_server.authorize_url)
    finished = consent_and_return(browser, auth_server, hops[-1])

    assert finished.status_code == 200, finished.text[:2000]
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE
    assert hops[0].startswith(site + "/reauth/"), hops  # handed to SITE_URL at the click
