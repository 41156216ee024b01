"""Acceptance: a new user follows the README against a second, strict OpenID Connect server.

The provider is panva's certified oidc-provider (`oidc_server/server.js`): refresh tokens only
with `offline_access` + `prompt=consent`, rotated on every use, reuse of a rotated-away refresh
token revokes the grant, 60-second access tokens, PKCE required. tokenadmin runs as real
processes: gunicorn for the web side, `manage.py connection …` for the CLI, a SQLite file for
both, Chromium (Playwright) for the person who consents.

Run alone: `.venv/bin/pytest tests/e2e -m browser` (after `npm ci` in tests/e2e/oidc_server).
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.browser import consent_at_provider, new_page
from tests.e2e.harness import OidcServer, TokenAdmin, skip_reason

SKIP_REASON = skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON or "")]

SCREENSHOT_CONNECTED = Path("/tmp/e2e-connected.png")
SCREENSHOT_NO_REFRESH = Path("/tmp/e2e-no-refresh-token.png")
BURST = 20


def connection_create(tokenadmin: TokenAdmin, oidc: OidcServer, name: str, *source: str) -> dict:
    """`manage.py connection create NAME SOURCE… --client-id … --client-secret … --json`."""
    result = tokenadmin.manage(
        "connection",
        "create",
        name,
        *source,
        "--client-id",
        oidc.client_id,
        "--client-secret",
        oidc.client_secret,
        "--json",
    )
    created = json.loads(result.stdout)
    assert created["status"] == "pending", created
    assert created["reauth_link"].startswith(tokenadmin.site_url + "/reauth/"), created
    assert oidc.client_secret not in result.stdout + result.stderr
    return created


def token(tokenadmin: TokenAdmin, slug: str) -> str:
    result = tokenadmin.manage("connection", "token", slug)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected only the token, got {result.stdout!r}"
    return lines[0].strip()


def show(tokenadmin: TokenAdmin, slug: str) -> dict:
    return json.loads(tokenadmin.manage("connection", "show", slug, "--json").stdout)


def refresh_fingerprint(tokenadmin: TokenAdmin, slug: str) -> str:
    """A short hash of the stored refresh token (the CLI never shows the token itself)."""
    code = (
        "from connections.models import Connection; "
        f"print(Connection.objects.get(slug={slug!r}).fingerprint('refresh_token'))"
    )
    return tokenadmin.manage("shell", "-c", code).stdout.strip().splitlines()[-1]


def stored_refresh_token(tokenadmin: TokenAdmin, slug: str) -> str:
    """The stored refresh token itself: only so the test can replay it at the provider."""
    code = (
        "from connections.models import Connection; "
        f"print(Connection.objects.get(slug={slug!r}).refresh_token)"
    )
    return tokenadmin.manage("shell", "-c", code).stdout.strip().splitlines()[-1]


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def test_it_keeps_a_new_users_connection_alive_at_a_strict_oidc_provider(
    stack: tuple[OidcServer, TokenAdmin], browser: Any
) -> None:
    oidc, tokenadmin = stack
    laps: list[tuple[str, float]] = []

    def lap(step: str) -> None:
        laps.append((step, time.monotonic()))

    lap("a")
    # a. Create the connection as the README says; it prints a one-click link.
    created = connection_create(
        tokenadmin, oidc, "Analytics", "--issuer", oidc.issuer, "--scope", "openid offline_access"
    )
    slug = created["slug"]
    assert slug == "analytics"
    link = created["reauth_link"]

    lap("b")
    # b. The account owner opens the link, signs in, consents, lands on "Connected".
    page = new_page(browser)
    response, authorize = consent_at_provider(page, link, oidc, tokenadmin)
    page.screenshot(path=str(SCREENSHOT_CONNECTED), full_page=True)
    body = page.inner_text("body")
    # What a strict provider needs to issue a refresh token, and PKCE (RFC 7636, S256).
    assert authorize["scope"].split() == ["openid", "offline_access"], authorize
    assert "consent" in authorize.get("prompt", "").split(), authorize
    assert authorize["code_challenge_method"] == "S256" and authorize["code_challenge"]
    assert authorize["redirect_uri"] == tokenadmin.callback_url
    assert response.status == 200, body
    assert page.inner_text("h1") == "Connected", body
    assert "Analytics" in body
    assert oidc.stats()["authorization_code"] == 1

    lap("c")
    # c. A pipeline's shell script gets a token; the connection is healthy.
    first_token = token(tokenadmin, slug)
    status = show(tokenadmin, slug)
    # Until tokenadmin has seen this provider rotate refresh tokens, a known 14-day expiry of an
    # unknown kind is a deadline, and 14 days is inside the default warning window.
    assert status["status"] in ("active", "expiring"), status
    assert status["slug"] == slug and status["name"] == "Analytics"
    access_expires_at = parse_time(status["access_expires_at"])
    assert access_expires_at is not None
    assert (
        timedelta(0)
        < access_expires_at - parse_time(status["last_refreshed_at"])
        <= timedelta(seconds=61)
    ), status
    # oidc-provider states no refresh-token lifetime in its token response and its refresh
    # tokens are opaque: the expiry is either read by introspection (14 days) or unknown, and
    # unknown must be shown as unknown, never guessed.
    if status["refresh_expiry_source"] == "unknown":
        assert status["refresh_expires_at"] is None and status["reauthorize_by"] is None, status
    else:
        assert status["refresh_expiry_source"] == "introspection", status
        expires = parse_time(status["refresh_expires_at"])
        assert expires is not None
        assert abs(expires - access_expires_at - timedelta(days=14)) < timedelta(minutes=5)
    assert first_token not in json.dumps(status)

    lap("d")
    # d. Forced refreshes: a new access token each time, and the rotated refresh token is the
    # one sent next. Reusing a rotated-away token would revoke the grant and fail the second.
    before = oidc.stats()
    fingerprints = [refresh_fingerprint(tokenadmin, slug)]
    tokenadmin.manage("connection", "refresh", slug)
    second_token = token(tokenadmin, slug)
    fingerprints.append(refresh_fingerprint(tokenadmin, slug))
    tokenadmin.manage("connection", "refresh", slug)
    third_token = token(tokenadmin, slug)
    fingerprints.append(refresh_fingerprint(tokenadmin, slug))
    after = oidc.stats()
    assert len({first_token, second_token, third_token}) == 3
    assert len(set(fingerprints)) == 3, f"refresh token did not rotate: {fingerprints}"
    assert after["refresh_token_ok"] - before["refresh_token_ok"] == 2, after
    assert after["refresh_token_errors"] == {} and after["grants_revoked"] == 0, after
    # oidc-provider keeps a rotated refresh token's expiry. Rotation alone never proves renewal:
    # the introspected expiry stays the reauthorize-by date (of unknown kind: two refreshes a
    # second apart are too close to tell absolute from sliding), 14 days away and so inside the
    # warning window. Unknown stays unknown (no date, never "renewed automatically").
    status = show(tokenadmin, slug)
    if status["refresh_expiry_source"] == "introspection":
        assert status["status"] == "expiring", status
        assert status["reauthorize_by_source"] in ("absolute_expiry", "expiry_of_unknown_kind")
        assert status["reauthorize_by"] == status["refresh_expires_at"], status
    else:
        assert status["status"] == "active", status
        assert (status["reauthorize_by"], status["reauthorize_by_source"]) == (None, "unknown")

    lap("e")
    # e. Twenty pipelines ask at once for an expired token: one refresh, one shared token.
    tokenadmin.expire_access_token(slug)
    before = oidc.stats()
    processes = [tokenadmin.spawn_manage("connection", "token", slug) for _ in range(BURST)]
    outputs = [process.communicate(timeout=120) for process in processes]
    failures = [
        (process.returncode, err[-500:])
        for process, (_, err) in zip(processes, outputs, strict=True)
        if process.returncode != 0
    ]
    assert not failures, failures
    tokens = {out.strip() for out, _ in outputs}
    after = oidc.stats()
    assert len(tokens) == 1, f"{len(tokens)} different tokens served"
    assert tokens != {third_token}
    assert after["refresh_token"] - before["refresh_token"] == 1, (before, after)
    assert after["refresh_token_errors"] == {} and after["grants_revoked"] == 0, after

    lap("f")
    # f. The link was consumed by the consent: opening it again says so.
    response = page.goto(link)
    assert response is not None and response.status == 410, page.inner_text("body")
    assert "already used" in page.inner_text("body")
    page.context.close()

    lap("g")
    # g. The provider really is strict: replaying a rotated-away refresh token revokes the grant,
    # and tokenadmin then says a person must act instead of failing silently.
    old_refresh_token = stored_refresh_token(tokenadmin, slug)
    tokenadmin.manage("connection", "refresh", slug)
    replay = requests.post(
        oidc.issuer + "/token",
        data={"grant_type": "refresh_token", "refresh_token": old_refresh_token},
        auth=(oidc.client_id, oidc.client_secret),
        timeout=10,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text
    assert oidc.stats()["grants_revoked"] == 1
    result = tokenadmin.manage("connection", "refresh", slug, check=False)
    assert result.returncode == 3 and "reauth-link" in result.stderr, result
    status = show(tokenadmin, slug)
    assert status["status"] == "needs_reauth" and "invalid_grant" in status["status_reason"]

    lap("h")
    # h. A new link brings it back, but only for the pinned account: bob is refused, alice wins.
    link = tokenadmin.manage("connection", "reauth-link", slug).stdout.strip()
    page = new_page(browser)
    response, _ = consent_at_provider(page, link, oidc, tokenadmin, login="bob")
    assert response.status == 400, page.inner_text("body")
    assert "alice" in page.inner_text("body") and "bob" in page.inner_text("body")
    assert show(tokenadmin, slug)["status"] == "needs_reauth"
    page.context.close()
    page = new_page(browser)
    response, _ = consent_at_provider(page, link, oidc, tokenadmin, login="alice")
    assert response.status == 200 and page.inner_text("h1") == "Connected"
    page.context.close()
    # Served again: active, or expiring when the learned 14-day absolute expiry is the deadline.
    assert show(tokenadmin, slug)["status"] in ("active", "expiring")
    assert token(tokenadmin, slug) not in tokens

    # Secrets that travel in URLs (the link's signed token, the callback's code and state)
    # never reach the web server's log, though every one of those requests is logged.
    log = tokenadmin.log_path.read_text(errors="replace")
    assert "/reauth/[redacted]/" in log and "code=[redacted]" in log, log[-2000:]
    assert link.rsplit("/reauth/", 1)[1].strip("/") not in log
    assert not re.search(r"[?&](code|state)=(?!\[redacted\])", log), log[-2000:]

    lap("end")
    print(
        "\nwalkthrough steps (s): "
        + ", ".join(f"{step} {end - start:.1f}" for (step, start), (_, end) in pairwise(laps))
    )


def test_it_explains_a_grant_without_offline_access(
    stack: tuple[OidcServer, TokenAdmin], browser: Any
) -> None:
    oidc, tokenadmin = stack
    # The CLI will not let a user forget offline_access at a provider that lists it…
    created = tokenadmin.manage(
        "connection",
        "create",
        "Reporting",
        "--issuer",
        oidc.issuer,
        "--scope",
        "openid",
        "--client-id",
        oidc.client_id,
        "--client-secret",
        oidc.client_secret,
        "--json",
    )
    assert "Also requesting offline_access" in created.stderr, created.stderr
    slug = json.loads(created.stdout)["slug"]
    assert show(tokenadmin, slug)["scopes"].split() == ["openid", "offline_access"]
    # …so drop it the way an admin editing the connection's scopes would, and get a new link.
    tokenadmin.manage(
        "shell",
        "-c",
        "from connections.models import Connection; "
        f"Connection.objects.filter(slug={slug!r}).update(scopes='openid')",
    )
    link = tokenadmin.manage("connection", "reauth-link", slug).stdout.strip()

    page = new_page(browser)
    response, authorize = consent_at_provider(page, link, oidc, tokenadmin)
    page.screenshot(path=str(SCREENSHOT_NO_REFRESH), full_page=True)
    body = page.inner_text("body")
    kinds = page.locator("[data-kind]").evaluate_all("nodes => nodes.map(n => n.dataset.kind)")
    page.context.close()

    assert authorize["scope"] == "openid" and authorize["prompt"] == "consent", authorize
    assert response.status == 400, body
    assert kinds == ["no_refresh_token"], body
    assert "no refresh token" in body
    # prompt=consent was sent, so the page names only what is missing.
    assert "offline_access" in body and "prompt=consent" not in body, body
    assert show(tokenadmin, slug)["status"] == "pending"
    # Nothing was stored: a pipeline is told a person must act (exit 3), on stderr only.
    result = tokenadmin.manage("connection", "token", slug, check=False)
    assert result.returncode == 3 and result.stdout == "", result
    assert "reauth-link" in result.stderr
