"""Browser tests: Playwright driving Chromium against pytest-django's live server.

Fixtures (mark tests `@pytest.mark.browser`; tests/conftest.py skips them without Chromium):
- `browser`: one headless Chromium for the test module (one at a time, as HELPERS.md asks);
- `live_site`: the live server's base URL (pytest-django `live_server`, so transactional db:
  rows a test creates are committed and the server's thread sees them);
- `staff_user`, `staff_page`: a Playwright page logged in as a staff user (session cookie, no
  login form round trip); `page_for(user)` for any other user, `anonymous_page` for nobody;
- `screenshot(page, name)`: saves a full-page PNG under `SCREENSHOT_DIR` and returns its path;
- `serious_axe_violations(page)`: axe-core's serious and critical violations, summarized.

Why `DJANGO_ALLOW_ASYNC_UNSAFE` is set, and only here, only while Playwright is open: the sync
API runs Playwright's asyncio loop in a greenlet of the test's own thread and, after every call,
registers that loop as the thread's *running* loop again (playwright/_impl/_greenlets.py), so
the loop stays "running" for as long as `sync_playwright()` is open. Django's async-safety check
(`django.utils.asyncio.async_unsafe`) only asks whether the thread has a running loop, so every
ORM call the test makes meanwhile (factories, assertions, the transactional db's flush) raises
SynchronousOnlyOperation although no coroutine ever touches the database connection: they are
plain synchronous calls from the main greenlet. The server side is unaffected either way: the
live server answers requests in its own thread, which has no loop. The variable is set by a
module-scoped fixture around `sync_playwright()` and removed when the module's Chromium stops,
so the rest of the suite keeps the check, and a Playwright left open can never leak into
later test modules (the loop is cleared when its context exits).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import CHROMIUM, CHROMIUM_ARGS

SCREENSHOT_DIR = Path(
    os.environ.get("TOKENADMIN_SCREENSHOT_DIR")
    or Path(tempfile.gettempdir()) / "tokenadmin-screenshots"
)
STAFF_PASSWORD = "staff-password-for-browser-tests"
AXE_BLOCKING_IMPACTS = ("serious", "critical")
# A laptop-sized window; tests that check the phone layout set their own viewport.
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright's sync API for one test module (see the module docstring for the env var)."""
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            yield playwright


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@pytest.fixture
def live_site(live_server: Any) -> str:
    return live_server.url


@pytest.fixture
def staff_user(transactional_db: None) -> Any:
    return get_user_model().objects.create_user(
        username="staff", email="staff@example.com", password=STAFF_PASSWORD, is_staff=True
    )


@pytest.fixture
def page_for(browser: Any, live_site: str) -> Iterator[Callable[..., Any]]:
    """`page_for(user)` → a fresh page (own context, own cookies) logged in as `user`, or
    anonymous for `None`; `origin=` another name of the live site (default `live_site`). Pages
    close at the end of the test."""
    contexts: list[Any] = []

    def open_page(user: Any | None = None, *, origin: str = live_site) -> Any:
        context = browser.new_context(viewport=VIEWPORT, base_url=origin)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        if user is not None:
            client = Client()
            client.force_login(user)
            cookie = client.cookies[settings.SESSION_COOKIE_NAME]
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": origin}]
            )
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def staff_page(page_for: Callable[..., Any], staff_user: Any) -> Any:
    return page_for(staff_user)


@pytest.fixture
def anonymous_page(page_for: Callable[..., Any]) -> Any:
    return page_for(None)


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """`screenshot(page, "name")` → the PNG's path under SCREENSHOT_DIR (full page)."""

    def save(page: Any, name: str, *, full_page: bool = True) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save


@pytest.fixture(scope="module")
def _axe() -> Any:
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


@pytest.fixture
def serious_axe_violations(_axe: Any) -> Callable[[Any], list[dict[str, Any]]]:
    """`serious_axe_violations(page)` → [] or one dict per serious/critical rule broken:
    `{"id", "impact", "help", "targets"}` (CSS selectors of the offending nodes)."""

    def check(page: Any) -> list[dict[str, Any]]:
        results = _axe.run(page)
        return [
            {
                "id": violation["id"],
                "impact": violation["impact"],
                "help": violation["help"],
                "targets": [node["target"] for node in violation["nodes"]][:10],
            }
            for violation in results.response["violations"]
            if violation.get("impact") in AXE_BLOCKING_IMPACTS
        ]

    return check
