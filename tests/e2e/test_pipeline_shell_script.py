"""Acceptance: a pipeline author uses tokenadmin from a shell script, `examples/pipeline-token.sh`.

Real processes as in the walkthrough: oidc-provider (60-second access tokens, rotating refresh
tokens), tokenadmin served by gunicorn, `manage.py` for the admin's steps, Chromium for the
person who consents once. The script runs under bash with curl, as a pipeline would run it, and
the test only looks at what a pipeline sees (stdout, stderr, exit code) and at what the provider
counted.

Every curl, python3 and sha256sum the script starts goes through a shim that records its
command line, so the test can show that neither the API key nor a token was ever an argument.

Run alone: `.venv/bin/pytest tests/e2e/test_pipeline_shell_script.py` (after `npm ci` in
tests/e2e/oidc_server).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.browser import consent_at_provider, new_page
from tests.e2e.harness import PROJECT_ROOT, OidcServer, TokenAdmin, skip_reason

SCRIPT = PROJECT_ROOT / "examples" / "pipeline-token.sh"
SHIMMED = ("curl", "python3", "sha256sum")


def _skip_reason() -> str | None:
    for tool in ("bash", *SHIMMED):
        if shutil.which(tool) is None:
            return f"needs {tool} on PATH to run examples/pipeline-token.sh"
    return skip_reason()


SKIP_REASON = _skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON or "")]

# The script's exit codes (its header; the same as `manage.py connection token`).
EXIT_ERROR, EXIT_USAGE, EXIT_NEEDS_PERSON = 1, 2, 3


@dataclass
class Pipeline:
    """Runs the script with a pipeline's environment: PATH, HOME, the URL and the key."""

    site_url: str
    shim_dir: Path
    argv_log: Path

    def run(
        self, *args: str, key: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.shim_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "ARGV_LOG": str(self.argv_log),
            "TOKENADMIN_URL": self.site_url,
            "TOKENADMIN_API_KEY": key,
        }
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )

    def token(self, *args: str, key: str, stdin: str | None = None) -> str:
        """The token the script printed; fails the test on anything but one line and exit 0."""
        result = self.run(*args, key=key, stdin=stdin)
        assert result.returncode == 0, (result.returncode, result.stderr)
        lines = result.stdout.splitlines()
        assert len(lines) == 1 and lines[0], f"expected only the token, got {result.stdout!r}"
        return lines[0]

    def argv_seen(self) -> str:
        return self.argv_log.read_text() if self.argv_log.exists() else ""


@pytest.fixture(scope="module")
def warehouse(stack: tuple[OidcServer, TokenAdmin]) -> str:
    """The admin creates connection `warehouse` at the provider; returns its one-click link."""
    oidc, tokenadmin = stack
    created = tokenadmin.manage(
        "connection",
        "create",
        "Warehouse",
        "--issuer",
        oidc.issuer,
        "--scope",
        "openid offline_access",
        "--client-id",
        oidc.client_id,
        "--client-secret",
        oidc.client_secret,
        "--json",
    )
    connection = json.loads(created.stdout)
    assert connection["slug"] == "warehouse" and connection["status"] == "pending", connection
    return connection["reauth_link"]


@pytest.fixture(scope="module")
def pipeline(
    stack: tuple[OidcServer, TokenAdmin], tmp_path_factory: pytest.TempPathFactory
) -> Pipeline:
    _, tokenadmin = stack
    shim_dir = tmp_path_factory.mktemp("shims")
    argv_log = shim_dir / "argv.log"
    for tool in SHIMMED:
        real = shutil.which(tool)
        shim = shim_dir / tool
        shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "{tool} $*" >> "$ARGV_LOG"\nexec {real} "$@"\n')
        shim.chmod(0o755)
    return Pipeline(site_url=tokenadmin.site_url, shim_dir=shim_dir, argv_log=argv_log)


def stored_refresh_token(tokenadmin: TokenAdmin, slug: str) -> str:
    """The stored refresh token, only so the test can revoke the grant at the provider."""
    code = (
        "from connections.models import Connection; "
        f"print(Connection.objects.get(slug={slug!r}).refresh_token)"
    )
    return tokenadmin.manage("shell", "-c", code).stdout.strip().splitlines()[-1]


def refreshes(oidc: OidcServer) -> tuple[int, int]:
    """(refresh-token requests, of which succeeded) as counted by the provider."""
    stats = oidc.stats()
    return stats["refresh_token"], stats["refresh_token_ok"]


def userinfo_status(endpoints: dict[str, Any], token: str) -> int:
    """What the provider's API says to the token: a pipeline's real call."""
    response = requests.get(
        endpoints["userinfo_endpoint"], headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return response.status_code


def test_it_serves_a_pipeline_script_through_expiry_rejection_and_revocation(
    stack: tuple[OidcServer, TokenAdmin], browser: Any, pipeline: Pipeline, warehouse: str
) -> None:
    oidc, tokenadmin = stack
    endpoints = requests.get(oidc.issuer + "/.well-known/openid-configuration", timeout=10).json()
    laps: list[tuple[str, float]] = []

    def lap(step: str) -> None:
        laps.append((step, time.monotonic()))

    lap("connect")
    # The connection's owner consents once (the admin created it: the `warehouse` fixture).
    page = new_page(browser)
    response, _ = consent_at_provider(page, warehouse, oidc, tokenadmin)
    assert response.status == 200 and page.inner_text("h1") == "Connected"
    page.context.close()
    slug = "warehouse"

    lap("key")
    # a. An API key for the pipeline, allowed this connection only; printed once.
    made = tokenadmin.manage("apikey", "create", "nightly-export", "--connection", slug)
    key = made.stdout.strip()
    assert len(made.stdout.splitlines()) == 1 and key, made.stdout
    assert "cannot be shown again" in made.stderr

    lap("fetch")
    # b. The script prints a token the provider accepts, and nothing else on stdout.
    first = pipeline.token(slug, key=key)
    assert userinfo_status(endpoints, first) == 200
    # Asked again while it is valid: the same token, no call to the provider.
    before = refreshes(oidc)
    assert pipeline.token(slug, key=key) == first
    assert refreshes(oidc) == before

    lap("expired")
    # c. The access token expired: the script gets a new one, from exactly one refresh.
    tokenadmin.expire_access_token(slug)
    before = refreshes(oidc)
    second = pipeline.token(slug, key=key)
    after = refreshes(oidc)
    assert second != first
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1), (before, after)
    assert userinfo_status(endpoints, second) == 200

    lap("rejected")
    # d. The provider rejected `second` early (say it was revoked): the script reports it by its
    # SHA-256 and prints the replacement, from one refresh.
    before = refreshes(oidc)
    reported = pipeline.run("--rejected", slug, key=key, stdin=second + "\n")
    after = refreshes(oidc)
    assert reported.returncode == 0, reported.stderr
    third = reported.stdout.strip()
    assert third and third not in (first, second)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1), (before, after)
    # A second pipeline reports the same, now stale, token: it gets the current one, and the
    # engine refreshes nothing (only a token that is still current is refreshed).
    again = pipeline.run("--rejected", slug, key=key, stdin=second)
    assert again.returncode == 0 and again.stdout.strip() == third, again.stderr
    assert "already replaced" in again.stderr
    assert refreshes(oidc) == after

    lap("revoked")
    # e. The account owner revokes tokenadmin's access at the provider (RFC 7009 revocation of
    # the refresh token ends the grant and its access tokens). tokenadmin cannot know yet; the
    # pipeline learns it from the provider's 401 and reports the token.
    revoked = requests.post(
        endpoints["revocation_endpoint"],
        data={"token": stored_refresh_token(tokenadmin, slug), "token_type_hint": "refresh_token"},
        auth=(oidc.client_id, oidc.client_secret),
        timeout=10,
    )
    assert revoked.status_code == 200, revoked.text
    assert oidc.stats()["grants_revoked"] == 1
    assert userinfo_status(endpoints, third) == 401
    before = refreshes(oidc)
    dead = pipeline.run("--rejected", slug, key=key, stdin=third)
    after = refreshes(oidc)
    # One refresh try, refused by the provider: a person must act, and the script says who and
    # where (the dashboard page), never with a link that would let the pipeline re-consent.
    assert after[0] - before[0] == 1 and after[1] == before[1], (before, after)
    assert oidc.stats()["refresh_token_errors"] == {"invalid_grant": 1}
    assert dead.returncode == EXIT_NEEDS_PERSON, (dead.returncode, dead.stderr)
    assert dead.stdout == ""
    dashboard = f"{tokenadmin.site_url}/connections/{slug}/"
    assert "a person must act [needs_reauth]" in dead.stderr, dead.stderr
    assert f"next step: A person must authorize {slug} again" in dead.stderr, dead.stderr
    assert f"dashboard: {dashboard}\n" in dead.stderr, dead.stderr
    assert "/reauth/" not in dead.stderr
    # From now on every fetch says the same, without calling the provider again.
    fetched = pipeline.run(slug, key=key)
    assert fetched.returncode == EXIT_NEEDS_PERSON and fetched.stdout == "", fetched.stderr
    assert f"dashboard: {dashboard}\n" in fetched.stderr
    assert refreshes(oidc) == after

    lap("end")
    # Only the script's stdout ever carried a token; the key and tokens were never an argument
    # of curl, python3 or sha256sum, and never reached the web server's log.
    secrets = {"API key": key, "first": first, "second": second, "third": third}
    argv = pipeline.argv_seen()
    assert "curl " in argv and "sha256sum" in argv, argv
    log = tokenadmin.log_path.read_text(errors="replace")
    assert "/token/rejected" in log and f"/api/v1/connections/{slug}/token" in log
    stderr = "".join(result.stderr for result in (reported, again, dead, fetched))
    # (Booleans first, so that a failure does not print the secret itself.)
    for name, value in secrets.items():
        in_argv, in_log, in_stderr = value in argv, value in log, value in stderr
        assert not in_argv, f"the {name} was a command-line argument"
        assert not in_log, f"the {name} is in the gunicorn log"
        assert not in_stderr, f"the {name} was printed on stderr"
    # What was sent for the rejected token is its SHA-256, as the server hashes it.
    assert hashlib.sha256(second.encode()).hexdigest() in argv

    print(
        "\npipeline script steps (s): "
        + ", ".join(f"{step} {end - start:.1f}" for (step, start), (_, end) in pairwise(laps))
    )


def test_it_refuses_a_wrong_api_key_without_printing_it(
    stack: tuple[OidcServer, TokenAdmin], pipeline: Pipeline, warehouse: str
) -> None:
    _, tokenadmin = stack
    wrong = "tka_" + "x" * 40
    result = pipeline.run("warehouse", key=wrong)
    assert result.returncode == EXIT_ERROR, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "HTTP 401 [unauthorized]" in result.stderr, result.stderr
    shown = wrong in result.stderr or wrong in pipeline.argv_seen()
    assert not shown, "the wrong key was printed or passed as an argument"
    # A good key for something else: 403 for this connection; an unknown slug: 404, exit 2.
    metrics_key = tokenadmin.manage("apikey", "create", "scraper", "--metrics").stdout.strip()
    result = pipeline.run("warehouse", key=metrics_key)
    assert result.returncode == EXIT_ERROR and "HTTP 403 [forbidden]" in result.stderr, result
    result = pipeline.run("no-such-connection", key=metrics_key)
    assert result.returncode == EXIT_USAGE and "HTTP 404 [not_found]" in result.stderr, result
    # No key at all: the script says what to set and does not call tokenadmin.
    result = pipeline.run("warehouse", key="")
    assert result.returncode == EXIT_USAGE and "set TOKENADMIN_API_KEY" in result.stderr
