"""Fixtures of the end-to-end tests, one set per test module: the processes and the browser."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import CHROMIUM_ARGS
from tests.e2e.harness import CHROMIUM, OidcServer, TokenAdmin


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OidcServer, TokenAdmin]]:
    """oidc-provider (60-second access tokens) and tokenadmin served by gunicorn, on one SQLite
    file; both logs are printed at the end (pytest shows them when a test failed)."""
    tmp_dir = tmp_path_factory.mktemp("e2e")
    tokenadmin = TokenAdmin.prepare(tmp_dir)
    if "connection" not in tokenadmin.manage("help", "--commands").stdout.split():
        pytest.skip("manage.py connection is not available (connections/management/commands)")
    oidc = OidcServer.start(tmp_dir, redirect_uri=tokenadmin.callback_url, access_ttl=60)
    try:
        tokenadmin.serve()
        yield oidc, tokenadmin
    finally:
        tokenadmin.stop()
        oidc.stop()
        print(f"\n--- oidc-provider log ---\n{oidc.read_log()}")
        print(f"\n--- gunicorn log ---\n{tokenadmin.read_log()}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module (the person who consents at the provider)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
