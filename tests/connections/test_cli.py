import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from connections.management.commands._configure import parse_lifetime
from connections.models import Connection, HealthCheck, ReauthLink, RefreshAttempt, RefreshExpiry
from tests.conftest import authorize_through_link
from tests.databases import test_database_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-value-never-printed"
SUMMARY_KEYS = {
    "slug",
    "name",
    "status",
    "status_reason",
    "provider",
    "account",
    "scopes",
    "access_expires_at",
    "access_expiry_source",
    "refresh_expires_at",
    "refresh_expiry_source",
    "reauthorize_by",
    "last_refreshed_at",
    "backup",
}


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("connection", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str, returncode: int = 1) -> str:
    """Run, expect a CommandError with `returncode`, return its message."""
    with pytest.raises(CommandError) as info:
        run(*args)
    assert info.value.returncode == returncode, str(info.value)
    return str(info.value)


def create(*extra: str, name: str = "Graph export") -> tuple[str, str]:
    return run("create", name, "--client-id", "cid", "--client-secret", SECRET, *extra)


def assert_no_secrets(text: str, connection: Connection) -> None:
    for secret in (connection.access_token, connection.refresh_token, connection.client_secret):
        if secret:
            assert secret not in text


# --- create --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_it_creates_a_pending_connection_from_a_preset_with_a_parameter(settings):
    out, err = create("--preset", "microsoft", "--preset-param", "tenant=contoso", "--json")
    body = json.loads(out)
    assert body["slug"] == "graph-export"
    assert body["status"] == "pending"
    assert body["provider"] == "microsoft-contoso"
    assert body["reauth_link"].startswith(settings.SITE_URL + "/reauth/")
    connection = Connection.objects.select_related("provider").get(slug="graph-export")
    assert connection.client_id == "cid"
    assert connection.client_secret == SECRET
    assert "/contoso/oauth2/v2.0/authorize" in connection.provider.authorize_url
    assert ReauthLink.objects.filter(connection=connection).count() == 1
    assert "Note on preset microsoft" in err
    assert SECRET not in out + err


@pytest.mark.django_db
def test_it_prints_the_link_to_open_after_creating(settings):
    out, _ = create("--preset", "xero")
    lines = out.splitlines()
    assert "graph-export" in lines[0] and "pending" in lines[0]
    assert "Open this link to authorize" in out
    assert lines[-1].startswith(settings.SITE_URL + "/reauth/")


@pytest.mark.django_db
def test_it_says_which_preset_parameter_is_missing():
    message = fails("create", "X", "--client-id", "c", "--client-secret", "s", "--preset", "okta")
    assert message.startswith("--preset-param: ")
    assert "needs a value for okta_domain" in message
    assert not Connection.objects.exists()


@pytest.mark.django_db
def test_it_rejects_an_unknown_preset():
    message = fails("create", "X", "--client-id", "c", "--client-secret", "s", "--preset", "nope")
    assert "Unknown preset 'nope'" in message


@pytest.mark.django_db
def test_it_creates_a_connection_by_discovery_that_can_be_authorized(auth_server, settings):
    client_id, client_secret = auth_server.register_client(settings.SITE_URL + "/oauth/callback/")
    out, _ = run(
        "create", "Discovered", "--client-id", client_id, "--client-secret", client_secret,
        "--issuer", auth_server.issuer, "--json",
    )  # fmt: skip
    body = json.loads(out)
    connection = Connection.objects.select_related("provider").get(slug=body["slug"])
    assert connection.provider.issuer.rstrip("/") == auth_server.issuer
    assert connection.provider.token_url == auth_server.token_url

    response = authorize_through_link(connection, auth_server)
    assert response.status_code == 200, response.content.decode()
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE
    assert connection.refresh_token
    assert connection.account_id == "1"  # pinned from the id_token: openid was requested


@pytest.mark.django_db
def test_it_reports_a_discovery_failure(auth_server):
    message = fails(
        "create", "X", "--client-id", "c", "--client-secret", "s",
        "--issuer", auth_server.base_url + "/missing",
    )  # fmt: skip
    assert "Discovery failed" in message
    assert not Connection.objects.exists()


@pytest.mark.django_db
def test_it_creates_a_connection_from_explicit_urls():
    out, _ = create(
        "--authorize-url", "https://id.example.test/authorize",
        "--token-url", "https://id.example.test/token",
        "--auth-method", "client_secret_post", "--json",
    )  # fmt: skip
    connection = Connection.objects.select_related("provider").get(slug="graph-export")
    assert json.loads(out)["provider"] == connection.provider.slug == "id-example-test"
    assert connection.provider.authorize_url == "https://id.example.test/authorize"
    assert connection.provider.token_endpoint_auth_method == "client_secret_post"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("flag", "url"),
    [("--authorize-url", "example.test/authorize"), ("--token-url", "ftp://example.test/t")],
)
def test_it_rejects_a_bad_url(flag, url):
    urls = {"--authorize-url": "https://ok.test/a", "--token-url": "https://ok.test/t", flag: url}
    message = fails(
        "create", "X", "--client-id", "c", "--client-secret", "s",
        *[part for pair in urls.items() for part in pair],
    )  # fmt: skip
    assert message.startswith(f"{flag}: ")
    assert "must be an absolute http(s) URL" in message
    assert not Connection.objects.exists()


@pytest.mark.django_db
def test_it_needs_a_token_url_with_an_authorize_url():
    message = fails(
        "create", "X", "--client-id", "c", "--client-secret", "s",
        "--authorize-url", "https://ok.test/a",
    )  # fmt: skip
    assert message.startswith("--token-url: ")
    assert "needs a token endpoint" in message


@pytest.mark.django_db
def test_it_refuses_a_duplicate_slug():
    create("--preset", "xero")
    message = fails(
        "create", "Graph export", "--client-id", "c", "--client-secret", "s", "--preset", "box"
    )
    assert "slug 'graph-export' already exists" in message
    create("--preset", "box", "--slug", "graph-export-2")
    assert Connection.objects.count() == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("3600s", timedelta(seconds=3600)),
        ("90", timedelta(days=90)),
    ],
)
def test_it_parses_refresh_lifetimes(text, expected):
    assert parse_lifetime(text) == expected


@pytest.mark.django_db
def test_it_stores_refresh_overrides():
    create("--preset", "hubspot", "--refresh-lifetime", "12h", "--refresh-expiry", "absolute")
    connection = Connection.objects.get(slug="graph-export")
    assert connection.refresh_lifetime_override == timedelta(hours=12)
    assert connection.refresh_expiry_override == RefreshExpiry.ABSOLUTE
    assert connection.effective_refresh_expiry == RefreshExpiry.ABSOLUTE


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["ninety", "90x", "0d", "-5", "1.5d"])
def test_it_rejects_a_bad_refresh_lifetime(text):
    message = fails(
        "create", "X", "--client-id", "c", "--client-secret", "s", "--preset", "xero",
        "--refresh-lifetime", text,
    )  # fmt: skip
    assert "is not a lifetime" in message
    assert not Connection.objects.exists()


@pytest.mark.django_db
def test_it_reads_the_secret_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    run(
        "create", "X", "--client-id", "c", "--client-secret-file", str(secret_file),
        "--preset", "xero",
    )  # fmt: skip
    assert Connection.objects.get(slug="x").client_secret == "from-a-file"


@pytest.mark.django_db
def test_it_reads_the_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv("TOKENADMIN_CLIENT_SECRET", "from-the-env")
    run("create", "X", "--client-id", "c", "--preset", "xero")
    assert Connection.objects.get(slug="x").client_secret == "from-the-env"


@pytest.mark.django_db
def test_it_needs_a_client_secret(monkeypatch):
    monkeypatch.delenv("TOKENADMIN_CLIENT_SECRET", raising=False)
    message = fails("create", "X", "--client-id", "c", "--preset", "xero")
    assert "TOKENADMIN_CLIENT_SECRET" in message


@pytest.mark.django_db
def test_it_keeps_the_scope_a_refresh_token_needs():
    _, err = create("--preset", "microsoft", "--preset-param", "tenant=t", "--scope", "Mail.Read")
    assert Connection.objects.get(slug="graph-export").scopes == "Mail.Read offline_access"
    assert "Also requesting offline_access" in err


@pytest.mark.django_db
def test_it_links_a_backup_and_rejects_an_unknown_one():
    create("--preset", "xero", name="Primary")
    create("--preset", "xero", "--backup", "primary", name="Secondary")
    assert Connection.objects.get(slug="secondary").backup.slug == "primary"
    fails(
        "create", "Third", "--client-id", "c", "--client-secret", "s", "--preset", "xero",
        "--backup", "missing", returncode=2,
    )  # fmt: skip


# --- list / show ---------------------------------------------------------------------------
def test_it_lists_and_shows_connections_as_json_without_secrets(authorized_connection):
    c = authorized_connection
    listed, _ = run("list", "--json")
    shown, _ = run("show", c.slug, "--json")
    items = json.loads(listed)
    assert [item["slug"] for item in items] == [c.slug]
    body = json.loads(shown)
    assert body == items[0]
    assert set(body) >= SUMMARY_KEYS
    assert body["status"] == "active"
    assert body["provider"] == "testauth"
    assert body["account"]
    assert body["refresh_expiry_source"] == c.refresh_expiry_source
    for key in ("access_expires_at", "last_refreshed_at"):
        assert body[key].endswith(("Z", "+00:00")), body[key]
    assert body["access_expires_at"] == c.access_expires_at.isoformat().replace("+00:00", "Z")
    human_list, _ = run("list")
    human_show, _ = run("show", c.slug)
    assert c.slug in human_list and "active" in human_list
    assert "testauth" in human_show
    for text in (listed, shown, human_list, human_show):
        assert_no_secrets(text, c)


@pytest.mark.django_db
def test_it_shows_unknown_expiry_as_null():
    create("--preset", "xero")
    body = json.loads(run("show", "graph-export", "--json")[0])
    assert body["access_expires_at"] is None
    assert body["reauthorize_by"] is None
    assert body["status"] == "pending"
    assert SECRET not in json.dumps(body)


@pytest.mark.django_db
def test_it_says_when_a_slug_is_unknown():
    assert "No connection with slug 'ghost'" in fails("show", "ghost", returncode=2)
    fails("token", "ghost", returncode=2)
    fails("refresh", "ghost", returncode=2)
    fails("reauth-link", "ghost", returncode=2)


# --- token ---------------------------------------------------------------------------------
def test_it_prints_only_the_token(authorized_connection, auth_server_clean):
    out, err = run("token", authorized_connection.slug)
    assert out == authorized_connection.access_token + "\n"
    assert err == ""
    assert auth_server_clean.stats()["refresh_calls"] == 0


def test_it_refreshes_an_expired_token_before_printing_it(authorized_connection, auth_server_clean):
    old = authorized_connection.access_token
    Connection.objects.filter(pk=authorized_connection.pk).update(
        access_expires_at=timezone.now() - timedelta(seconds=1)
    )
    out, _ = run("token", authorized_connection.slug)
    authorized_connection.refresh_from_db()
    assert out == authorized_connection.access_token + "\n"
    assert out.strip() != old
    assert auth_server_clean.stats()["refresh_calls"] == 1


def test_it_refreshes_when_min_ttl_is_not_met(authorized_connection, auth_server_clean):
    old = authorized_connection.access_token
    now = timezone.now()
    Connection.objects.filter(pk=authorized_connection.pk).update(
        access_expires_at=now + timedelta(minutes=20), last_refreshed_at=now - timedelta(minutes=40)
    )
    out, _ = run("token", authorized_connection.slug, "--min-ttl", "1800")
    assert out.strip() != old
    assert auth_server_clean.stats()["refresh_calls"] == 1


def test_it_refuses_a_token_for_a_pending_connection(dot_connection):
    message = fails("token", dot_connection.slug, returncode=3)
    assert "has not been authorized" in message
    assert "reauth-link analytics" in message


def test_it_reports_a_provider_outage_with_its_own_exit_code(
    authorized_connection, auth_server_clean
):
    Connection.objects.filter(pk=authorized_connection.pk).update(
        access_expires_at=timezone.now() - timedelta(seconds=1)
    )
    auth_server_clean.set_fault("500", count=5)
    message = fails("token", authorized_connection.slug, returncode=4)
    assert "provider_unavailable" in message
    assert "retry" in message
    assert_no_secrets(message, authorized_connection)


# --- refresh -------------------------------------------------------------------------------
def test_it_forces_a_refresh(authorized_connection, auth_server_clean):
    old = authorized_connection.access_token
    out, _ = run("refresh", authorized_connection.slug)
    fresh = Connection.objects.get(pk=authorized_connection.pk)
    assert fresh.access_token != old
    assert auth_server_clean.stats()["refresh_calls"] == 1
    assert RefreshAttempt.objects.filter(
        connection=fresh, trigger=RefreshAttempt.Trigger.FORCED
    ).exists()
    assert out.startswith(f"Refreshed {fresh.slug}: access token expires ")
    assert fresh.access_expires_at.isoformat().replace("+00:00", "Z") in out
    assert_no_secrets(out, fresh)
    assert old not in out


def test_it_refuses_to_refresh_a_pending_connection(dot_connection):
    fails("refresh", dot_connection.slug, returncode=3)


# --- reauth-link ---------------------------------------------------------------------------
def test_it_prints_a_reauth_link_that_leads_to_the_provider(dot_connection, auth_server, settings):
    out, _ = run("reauth-link", dot_connection.slug, "--days", "2")
    url = out.strip()
    assert out == url + "\n"
    assert url.startswith(settings.SITE_URL + "/reauth/")
    link = ReauthLink.objects.get(connection=dot_connection)
    assert link.expires_at - timezone.now() > timedelta(days=2) - timedelta(minutes=1)
    assert link.expires_at - timezone.now() <= timedelta(days=2)
    response = Client().get(url.removeprefix(settings.SITE_URL))
    assert response.status_code == 302
    assert response["Location"].startswith(auth_server.authorize_url)


# --- exit codes through a real process -----------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_it_exits_with_the_documented_codes(dot_provider):
    Connection.objects.create(name="Pending", slug="pending", provider=dot_provider, client_id="c")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # The subprocess must open the test database, not the one its own settings would name.
        "DATABASE_URL": test_database_url(),
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "connection", *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    pending = manage("token", "pending")
    assert (pending.returncode, pending.stdout) == (3, "")
    assert "pending has not been authorized yet" in pending.stderr
    unknown = manage("token", "ghost")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "No connection with slug 'ghost'" in unknown.stderr
    usage = manage("token")
    assert usage.returncode == 2
    assert "exit codes:" in manage("token", "--help").stdout


def test_it_checks_health_on_demand(authorized_connection, auth_server_clean):
    out = StringIO()
    call_command("connection", "check", "analytics", stdout=out)
    assert "analytics: healthy (UserInfo endpoint, HTTP 200" in out.getvalue()
    assert HealthCheck.objects.filter(connection=authorized_connection, ok=True).count() == 1


def test_it_reports_a_revoked_grant_found_by_the_health_check(
    authorized_connection, auth_server_clean
):
    auth_server_clean.revoke_all("alice")
    with pytest.raises(CommandError) as failure:
        call_command("connection", "check", "analytics", stdout=StringIO())
    assert failure.value.returncode == 3
    authorized_connection.refresh_from_db()
    assert authorized_connection.status == Connection.Status.NEEDS_REAUTH
