"""The person at the provider: Chromium (Playwright) opening a link and consenting at oidc-provider.

Shared by the end-to-end tests; the `browser` fixture (tests/e2e/conftest.py) launches Chromium.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.e2e.harness import OidcServer, TokenAdmin


def new_page(browser: Any) -> Any:
    """A fresh browser profile (a new user, no provider session) that stays on 127.0.0.1."""
    context = browser.new_context()
    # oidc-provider's dev pages import a Google font; the test must not depend on the internet.
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def consent_at_provider(
    page: Any, link: str, oidc: OidcServer, tokenadmin: TokenAdmin, *, login: str = "alice"
) -> tuple[Any, dict[str, str]]:
    """Open a reauthorization link, sign in as `login` and approve at oidc-provider.

    Returns tokenadmin's callback response and the query of the authorization request the link
    redirected to.
    """
    authorize_requests: list[str] = []
    page.on(
        "request",
        lambda request: (
            authorize_requests.append(request.url)
            if request.url.startswith(oidc.issuer + "/auth?")
            else None
        ),
    )
    page.goto(link)
    assert authorize_requests, f"the link did not lead to {oidc.issuer}/auth"
    assert page.url.startswith(oidc.issuer + "/interaction/"), page.url
    # oidc-provider's dev login page: any login and password are accepted.
    assert page.inner_text("h1") == "Sign-in", page.content()
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(oidc.issuer) + r"/interaction/"))
    assert page.inner_text("h1") == "Authorize", page.content()
    with page.expect_response(lambda r: r.url.startswith(tokenadmin.callback_url)) as callback:
        page.click("button[type=submit]")  # "Continue" on the consent page
    page.wait_for_load_state()
    return callback.value, dict(parse_qsl(urlsplit(authorize_requests[0]).query))
