"""`make demo` running for real (scripts/run.sh in a copy of the checkout, gunicorn + qcluster),
driven without a browser: the demo provider's pages, the consent, the 15-minute absolute grant
told in every token response, a warning and the expiry on the console, a reauthorization.

Time at the demo provider is moved by ageing its grant's rows (`age_grant`), so the end of a
15-minute grant is reached without waiting for it. Browser steps: tests/browser/test_demo.py.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import requests

from tests.conftest import IS_POSTGRES
from tests.demo.harness import DemoSite, skip_reason

SKIP = skip_reason()
pytestmark = [
    pytest.mark.skipif(bool(SKIP), reason=SKIP or ""),
    # Demo mode runs on its own SQLite file whatever DATABASE_URL says: the SQLite pass covers it.
    pytest.mark.skipif(IS_POSTGRES, reason="the demo ignores DATABASE_URL (own SQLite file)"),
]

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
FILLED = re.compile(r'<input type="(?:text|password)" id="(\w+)" name="\w+" value="([^"]*)"')
# Mail on the console is MIME: long headers are folded onto indented lines.
FOLD = re.compile(r"\r?\n[ \t]+")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    site = DemoSite.start(tmp_path_factory.mktemp("make-demo"))
    yield site
    site.stop()


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def unescape(value: str) -> str:
    return value.replace("&amp;", "&")


def consent(site: DemoSite) -> requests.Response:
    """What a person does with a reauthorization link: sign in at the demo provider (the demo
    user is filled in: submit it as it is) and authorize. Returns tokenadmin's result page."""
    link = site.manage("connection", "reauth-link", "demo").stdout.strip()
    browser = requests.Session()
    page = browser.get(link, timeout=10)
    assert page.url == site.site_url + "/demo-provider/login/"
    filled = dict(
        re.findall(
            r'<input type="(?:text|password)" id="(\w+)" name="\w+" value="([^"]*)"', page.text
        )
    )
    page = browser.post(
        page.url,
        data={"csrfmiddlewaretoken": CSRF.search(page.text).group(1), **filled},
        headers={"Referer": page.url},
        timeout=10,
    )
    assert "/demo-provider/authorize/" in page.url, page.text[:2000]
    form = {name: unescape(value) for name, value in HIDDEN.findall(page.text)}
    page = browser.post(
        page.url, data=form | {"allow": "Authorize"}, headers={"Referer": page.url}, timeout=30
    )
    assert page.url.startswith(site.site_url + "/oauth/callback/"), page.text[:2000]
    return page


def age_grant(site: DemoSite, seconds: int) -> None:
    """Move the demo provider's clock: its grants (every refresh token) began `seconds` earlier."""
    site.shell(
        "from datetime import timedelta; from django.db.models import F; "
        "from oauth2_provider.models import RefreshToken; "
        f"RefreshToken.objects.update(created=F('created') - timedelta(seconds={seconds}))"
    )


def console_mail(site: DemoSite) -> str:
    return FOLD.sub(" ", site.read_log(limit=None))


def test_its_login_page_fills_in_the_demo_user_and_refuses_others(demo):
    page = demo.get("/demo-provider/login/")
    assert page.status_code == 200
    assert 'id="username" name="username" value="demo"' in page.text
    assert 'id="password" name="password" value="demo"' in page.text

    browser = requests.Session()
    form = browser.get(demo.site_url + "/demo-provider/login/", timeout=10)
    token = CSRF.search(form.text).group(1)
    for username, password in (("demo", "wrong"), ("admin", demo.admin_password)):
        refused = browser.post(
            form.url,
            data={"csrfmiddlewaretoken": token, "username": username, "password": password},
            headers={"Referer": form.url},
            timeout=10,
        )
        # The dashboard's admin is no user of "the provider": only the demo user signs in there.
        assert refused.status_code == 400
        assert "sign in as demo / demo" in refused.text


def test_a_newcomer_authorizes_the_demo_connection_and_learns_its_absolute_deadline(demo):
    assert demo.show()["slug"] == "demo"

    result = consent(demo)
    consented_at = datetime.now().astimezone()

    assert "Demo connection is connected as demo" in " ".join(result.text.split())
    shown = demo.show()
    assert (shown["status"], shown["account"]) == ("active", "demo")
    # The access token's 2 minutes and the grant's 15, both from the token response.
    access_left = when(shown["access_expires_at"]) - consented_at
    assert timedelta(seconds=100) < access_left <= timedelta(seconds=120)
    assert shown["access_expiry_source"] == "response"
    grant_left = when(shown["refresh_expires_at"]) - consented_at
    assert timedelta(minutes=14, seconds=40) < grant_left <= timedelta(minutes=15)
    assert (shown["refresh_expiry_source"], shown["refresh_expiry_kind"]) == (
        "response",
        "absolute",
    )
    assert shown["reauthorize_by"] == shown["refresh_expires_at"]
    # The consent request never reaches the log outside its redacted `state=`.
    assert "%26state%3D" not in demo.read_log(limit=None)


def test_a_refresh_rotates_the_refresh_token_and_keeps_the_grants_deadline(demo):
    consent(demo)
    before = demo.show()

    demo.manage("connection", "refresh", "demo")

    after = demo.show()
    assert when(after["last_refreshed_at"]) > when(before["last_refreshed_at"])
    # Counted down from the same consent: the deadline did not move.
    moved = when(after["refresh_expires_at"]) - when(before["refresh_expires_at"])
    assert abs(moved) <= timedelta(seconds=2)
    issued, live = demo.shell(
        "from oauth2_provider.models import RefreshToken as R; "
        "family = R.objects.filter(token_family=R.objects.latest('created').token_family); "
        "print(family.count(), family.filter(revoked__isnull=True).count())"
    ).split()
    # Rotated: one grant, several refresh tokens issued, only the latest still valid (the sweep
    # may have refreshed too meanwhile).
    assert int(issued) >= 2
    assert live == "1"


def test_the_grant_warns_then_ends_at_its_deadline_and_one_consent_renews_it(demo):
    consent(demo)

    # Nine minutes left (inside the demo's 10-minute lead time): expiring, and a warning.
    age_grant(demo, 6 * 60)
    demo.manage("connection", "refresh", "demo")
    shown = demo.show()
    assert shown["status"] == "expiring"
    deadline = when(shown["reauthorize_by"])
    assert (
        timedelta(minutes=8, seconds=30)
        < deadline - datetime.now().astimezone()
        <= timedelta(minutes=9)
    )
    subject = f"Subject: [tokenadmin] Reauthorize Demo connection by {deadline:%Y-%m-%d %H:%M} UTC"
    demo.wait_for(
        lambda: subject in console_mail(demo), timeout=150, what="expiry warning on the console"
    )

    # Past the deadline: the provider refuses the grant, tokenadmin says a person must act.
    age_grant(demo, 10 * 60)
    refused = demo.manage("connection", "refresh", "demo", check=False)
    assert refused.returncode == 3, refused.stderr
    assert demo.show()["status"] == "needs_reauth"
    demo.wait_for(
        lambda: "[tokenadmin] Action needed: reauthorize Demo connection" in console_mail(demo),
        timeout=90,
        what="needs-reauthorization email on the console",
    )

    consent(demo)
    assert demo.show()["status"] == "active"


def test_demo_setup_again_keeps_the_connection_and_gives_a_new_admin_password(demo):
    before = demo.show()
    again = demo.manage("demo_setup").stdout
    assert "created" not in again and "registered" not in again
    password = re.search(r"password: (\S+)", again).group(1)
    assert password != demo.admin_password
    after = demo.show()
    assert (after["status"], after["last_refreshed_at"]) == (
        before["status"],
        before["last_refreshed_at"],
    )
    demo.admin_password = password


def test_no_token_or_secret_reaches_the_console(demo):
    log = demo.read_log(limit=None)
    shown = demo.shell(
        "from connections.models import Connection; c = Connection.objects.get(slug='demo'); "
        "print(c.access_token); print(c.refresh_token); print(c.client_secret)"
    ).split()
    assert len(shown) == 3
    for secret in shown:
        assert secret not in log
