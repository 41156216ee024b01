"""connections.services, connections section: every rule the front doors share, once."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from connections import services
from connections.models import (
    AuthMethod,
    Connection,
    ConsumerSchedule,
    Provider,
    RefreshExpiry,
    StatusChange,
)
from connections.services import ServiceError
from tests.factories import ConnectionFactory, ProviderFactory

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
Status = Connection.Status

pytestmark = pytest.mark.django_db


def create(**kwargs) -> services.ConnectionSaved:
    fields = {"name": "Graph export", "client_id": "cid", "client_secret": "CS-never-shown"}
    return services.connection_create(**(fields | kwargs))


def refused(field: str | None, **kwargs) -> str:
    """Create with `kwargs`, expect a ServiceError about `field`, and that nothing was stored."""
    before = Connection.objects.count()
    with pytest.raises(ServiceError) as info:
        create(**kwargs)
    assert info.value.field == field, str(info.value)
    assert Connection.objects.count() == before
    assert "--" not in str(info.value)  # never a command-line option
    return str(info.value)


# --- create: the three provider sources, and an existing provider --------------------------
@time_machine.travel(NOW, tick=False)
def test_it_creates_a_pending_connection_from_a_preset_and_passes_on_its_note():
    saved = create(preset="microsoft", preset_params={"tenant": "contoso"})
    connection = Connection.objects.select_related("provider").get(slug="graph-export")
    assert saved.connection == connection
    assert connection.status == Status.PENDING
    assert connection.provider.slug == "microsoft-contoso"
    assert "/contoso/oauth2/v2.0/authorize" in connection.provider.authorize_url
    assert connection.client_secret == "CS-never-shown"
    assert connection.client_secret_set_at == NOW
    assert any(note.startswith("Note on preset microsoft:") for note in saved.notes)
    assert "CS-never-shown" not in repr(saved)


def test_it_creates_a_connection_by_discovery(auth_server):
    saved = create(issuer=auth_server.issuer)
    provider = saved.connection.provider
    assert provider.token_url == auth_server.token_url
    assert provider.default_scopes == "openid offline_access"
    assert saved.connection.scopes == ""  # the provider's defaults, which ask for a refresh token


def test_it_creates_a_connection_from_typed_in_endpoints():
    saved = create(
        authorize_url="https://id.example.test/authorize",
        token_url="https://id.example.test/token",
        userinfo_url="https://id.example.test/me",
        auth_method=AuthMethod.CLIENT_SECRET_POST,
    )
    provider = saved.connection.provider
    assert provider.slug == "id-example-test"
    assert provider.userinfo_url == "https://id.example.test/me"
    assert provider.token_endpoint_auth_method == AuthMethod.CLIENT_SECRET_POST


def test_it_creates_a_connection_at_an_existing_provider_with_every_setting():
    provider, backup = ProviderFactory(), ConnectionFactory(slug="spare")
    saved = create(
        provider=provider,
        slug="export",
        backup=backup,
        contact_email="owner@example.com",
        expected_account="acct-42",
        refresh_lifetime_override=timedelta(days=30),
        refresh_expiry_override=RefreshExpiry.ABSOLUTE,
        refresh_threshold=900,
        renewal_fraction=0.5,
        health_check_url="https://api.example.test/ping",
    )
    connection = Connection.objects.get(slug="export")
    assert saved.connection.pk == connection.pk
    assert (connection.provider, connection.backup) == (provider, backup)
    assert (connection.contact_email, connection.expected_account) == (
        "owner@example.com",
        "acct-42",
    )
    assert connection.refresh_lifetime_override == timedelta(days=30)
    assert connection.refresh_expiry_override == RefreshExpiry.ABSOLUTE
    assert (connection.refresh_threshold, connection.renewal_fraction) == (900, 0.5)


# --- create: scopes -------------------------------------------------------------------------
def test_it_adds_the_scope_a_refresh_token_needs_and_says_so():
    provider = ProviderFactory(name="Acme ID", default_scopes="openid offline_access")
    saved = create(provider=provider, scopes=["read write", "read"])
    assert saved.connection.scopes == "read write offline_access"
    assert saved.added_scopes == ("offline_access",)
    assert saved.notes == (
        "Also requesting offline_access: Acme ID needs it to issue a refresh token.",
    )


def test_it_adds_salesforce_s_refresh_token_scope():
    saved = create(
        preset="salesforce", preset_params={"host": "login.salesforce.com"}, scopes="api"
    )
    assert saved.connection.scopes == "api refresh_token"


def test_it_adds_nothing_when_the_scope_is_requested_or_scopes_are_left_to_the_provider():
    provider = ProviderFactory(default_scopes="openid offline_access")
    assert create(provider=provider, scopes="offline_access read").added_scopes == ()
    blank = create(provider=provider, name="Other")
    assert (blank.connection.scopes, blank.added_scopes, blank.notes) == ("", (), ())


# --- create: refusals -----------------------------------------------------------------------
def test_it_refuses_a_taken_slug_an_invalid_one_and_a_name_without_one():
    create(provider=ProviderFactory())
    assert "slug 'graph-export' already exists" in refused("slug", provider=ProviderFactory())
    assert "not a valid slug" in refused("slug", provider=ProviderFactory(), slug="no spaces")
    assert "too long" in refused("slug", provider=ProviderFactory(), slug="x" * 51)
    assert "give one" in refused("slug", provider=ProviderFactory(), name="!!!")


def test_it_refuses_a_slug_that_names_a_dashboard_page():
    for name in ("Add", "discover"):
        assert "names a dashboard page" in refused("slug", provider=ProviderFactory(), name=name)
    assert not Connection.objects.filter(slug__in=["add", "discover"]).exists()


def test_it_needs_exactly_one_provider_source():
    assert "one way" in refused(None)
    refused("preset", provider=ProviderFactory(), preset="xero")
    refused("token_url", preset="xero", token_url="https://x.test/token")
    refused("preset_params", issuer="https://x.test", preset_params={"tenant": "t"})
    refused("token_url", authorize_url="https://x.test/authorize")


def test_it_names_the_preset_value_at_fault_without_naming_an_option():
    assert "Unknown preset 'nope'" in refused("preset", preset="nope")
    assert "needs a value for okta_domain" in refused("preset_params", preset="okta")
    assert "cannot go into a URL" in refused(
        "preset_params", preset="microsoft", preset_params={"tenant": "a/b"}
    )
    message = refused("authorize_url", authorize_url="ftp://x", token_url="https://x.test/t")
    assert "authorization endpoint must be an absolute http(s) URL" in message


def test_it_reports_a_failed_discovery(auth_server):
    assert "Discovery failed" in refused("issuer", issuer=auth_server.base_url + "/missing")


def test_it_validates_through_the_model_before_making_a_provider():
    refused("contact_email", preset="xero", contact_email="not-an-email")
    refused("renewal_fraction", preset="xero", renewal_fraction=2.0)
    refused("refresh_expiry_override", preset="xero", refresh_expiry_override="sometimes")
    assert not Provider.objects.exists()


def test_it_requires_a_client_secret():
    refused("client_secret", provider=ProviderFactory(), client_secret="")


# --- backup chains ------------------------------------------------------------------------------
def test_it_refuses_a_connection_as_its_own_backup():
    connection = ConnectionFactory()
    with pytest.raises(ServiceError, match="its own backup") as info:
        services.connection_update(connection=connection, changes={"backup": connection})
    assert info.value.field == "backup"
    assert Connection.objects.get(pk=connection.pk).backup is None


@pytest.mark.parametrize("length", [2, 3])
def test_it_refuses_a_backup_chain_that_loops(length):
    last = ConnectionFactory(slug="c0")
    chain = [last]
    for n in range(1, length):
        last = ConnectionFactory(slug=f"c{n}", backup=last)
        chain.append(last)
    first = Connection.objects.get(pk=chain[0].pk)
    with pytest.raises(ServiceError) as info:
        services.connection_update(connection=first, changes={"backup": chain[-1]})
    assert info.value.field == "backup"
    loop = " -> ".join(["c0", *(f"c{n}" for n in range(length - 1, 0, -1)), "c0"])
    assert loop in str(info.value)
    assert Connection.objects.get(pk=first.pk).backup is None


def test_it_allows_a_chain_that_ends():
    c = ConnectionFactory(slug="c")
    b = ConnectionFactory(slug="b", backup=c)
    saved = create(provider=ProviderFactory(), backup=b)
    assert saved.connection.backup.backup == c


# --- update ---------------------------------------------------------------------------------
@pytest.fixture
def live() -> Connection:
    return ConnectionFactory(authorized=True, last_refreshed_at=timezone.now())


def test_it_always_recomputes_due_times(live):
    Connection.objects.filter(pk=live.pk).update(refresh_due_at=None)
    services.connection_update(connection=live, changes={"name": "Renamed"})
    live.refresh_from_db()
    assert live.refresh_due_at == live.access_expires_at - timedelta(seconds=300)
    services.connection_update(connection=live, changes={"refresh_threshold": 900})
    stored = Connection.objects.get(pk=live.pk)
    assert stored.refresh_due_at == stored.access_expires_at - timedelta(seconds=900)
    assert live.refresh_due_at == stored.refresh_due_at


def test_it_never_overwrites_tokens_rotated_since_the_connection_was_read(live):
    stale = Connection.objects.get(pk=live.pk)
    Connection.objects.filter(pk=live.pk).update(
        access_token="AT-rotated", refresh_token="RT-rotated", version=7
    )
    services.connection_update(connection=stale, changes={"name": "Renamed", "scopes": ""})
    fresh = Connection.objects.get(pk=live.pk)
    assert fresh.name == "Renamed"
    assert (fresh.access_token, fresh.refresh_token, fresh.version) == (
        "AT-rotated",
        "RT-rotated",
        7,
    )


def test_it_refuses_settings_outside_the_allow_list(live):
    for name in ("access_token", "status", "client_secret", "version"):
        with pytest.raises(ServiceError) as info:
            services.connection_update(connection=live, changes={name: "x", "name": "Changed"})
        assert info.value.field == name
    assert Connection.objects.get(pk=live.pk).name == live.name


@time_machine.travel(NOW, tick=False)
def test_it_stamps_a_new_client_secret(live):
    services.connection_update(connection=live, changes={}, client_secret="CS-rotated")
    stored = Connection.objects.get(pk=live.pk)
    assert (stored.client_secret, stored.client_secret_set_at) == ("CS-rotated", NOW)
    with pytest.raises(ServiceError) as info:
        services.connection_update(connection=live, changes={}, client_secret="")
    assert info.value.field == "client_secret"


def test_it_applies_the_refresh_scope_rule_on_edit(live):
    saved = services.connection_update(connection=live, changes={"scopes": "read"})
    assert Connection.objects.get(pk=live.pk).scopes == "read offline_access"
    assert saved.added_scopes == ("offline_access",)


def test_it_refuses_a_taken_slug_on_edit(live):
    ConnectionFactory(slug="taken")
    with pytest.raises(ServiceError) as info:
        services.connection_update(connection=live, changes={"slug": "taken"})
    assert info.value.field == "slug"


def test_it_recomputes_the_due_times_of_every_connection_at_an_edited_provider(live):
    other = ConnectionFactory(
        authorized=True, provider=live.provider, last_refreshed_at=timezone.now()
    )
    services.provider_update(
        provider=live.provider,
        changes={"refresh_token_expiry": "sliding", "refresh_token_lifetime": timedelta(days=90)},
    )
    for connection in (live, other):
        connection = Connection.objects.select_related("provider").get(pk=connection.pk)
        assert connection.renew_due_at is not None
        assert connection.renew_due_at == connection.due_times()["renew_due_at"]


def test_it_refuses_an_invalid_provider_edit(live):
    with pytest.raises(ServiceError) as info:
        services.provider_update(provider=live.provider, changes={"token_url": "not a url"})
    assert info.value.field == "token_url"


# --- disable / enable -----------------------------------------------------------------------
def transitions(connection: Connection) -> list[tuple[str, str]]:
    rows = StatusChange.objects.filter(connection=connection).order_by("created_at", "pk")
    return list(rows.values_list("from_status", "to_status"))


def test_it_records_disabling_and_enabling(live):
    assert services.connection_disable(connection=live, reason="audit", actor="alice")
    assert not services.connection_disable(connection=live, reason="again", actor="bob")
    assert services.connection_enable(connection=live, actor="alice")
    assert transitions(live) == [("active", "disabled"), ("disabled", "active")]
    reasons = StatusChange.objects.filter(connection=live).order_by("pk")
    assert [row.reason for row in reasons] == ["disabled by alice: audit", "enabled by alice"]


@pytest.mark.parametrize(
    ("before", "fields", "expected"),
    [
        (Status.PENDING, {"authorized_at": None, "refresh_token": ""}, Status.PENDING),
        (Status.ACTIVE, {"refresh_token": ""}, Status.NEEDS_REAUTH),
        (Status.NEEDS_REAUTH, {}, Status.NEEDS_REAUTH),
        (Status.DEGRADED, {}, Status.ACTIVE),
        (Status.ACTIVE, {"refresh_expires_at_days": 5}, Status.EXPIRING),
    ],
)
def test_it_enables_to_the_status_the_grant_is_really_in(before, fields, expected):
    days = fields.pop("refresh_expires_at_days", None)
    if days:
        fields["refresh_expires_at"] = timezone.now() + timedelta(days=days)
    connection = ConnectionFactory(authorized=True, status=before, **fields)
    services.connection_disable(connection=connection, reason="", actor="ops")
    assert services.connection_enable(connection=connection, actor="ops")
    assert Connection.objects.get(pk=connection.pk).status == expected


def test_it_enables_only_a_disabled_connection(live):
    assert not services.connection_enable(connection=live, actor="ops")
    assert transitions(live) == []


# --- consumer schedules -----------------------------------------------------------------------
@time_machine.travel(NOW, tick=False)
def test_it_adds_a_consumer_with_its_next_run_ready_for_the_sweep(live):
    schedule = services.consumer_add(
        connection=live,
        label="nightly",
        cron="0 2 * * *",
        timezone="Europe/Berlin",
        lead_minutes=30,
    )
    stored = ConsumerSchedule.objects.get(pk=schedule.pk)
    assert stored.next_run_at == datetime(2026, 1, 16, 1, 0, tzinfo=UTC)  # 02:00 CET
    assert stored.prepare_at == datetime(2026, 1, 16, 0, 30, tzinfo=UTC)
    assert stored.run_minutes == 60  # the model's default


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"cron": "every night"}, "cron", "not a valid cron expression"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not a known time zone"),
        ({"label": "  "}, "label", "needs a name"),
        ({"lead_minutes": -1}, "lead_minutes", "greater than or equal to 0"),
    ],
)
def test_it_refuses_an_invalid_consumer(live, kwargs, field, words):
    with pytest.raises(ServiceError, match=words) as info:
        services.consumer_add(connection=live, **({"label": "x", "cron": "0 2 * * *"} | kwargs))
    assert info.value.field == field
    assert not ConsumerSchedule.objects.exists()


def test_it_refuses_a_second_consumer_of_the_same_name_and_removes_by_name(live):
    services.consumer_add(connection=live, label="nightly", cron="0 2 * * *")
    with pytest.raises(ServiceError, match="already has a consumer named 'nightly'"):
        services.consumer_add(connection=live, label="nightly", cron="0 3 * * *")
    services.consumer_remove(connection=live, label="nightly")
    assert not ConsumerSchedule.objects.exists()
    with pytest.raises(ServiceError, match="no consumer named 'nightly'") as info:
        services.consumer_remove(connection=live, label="nightly")
    assert info.value.field == "label"
