"""Public clients at every front door: a blank client secret is accepted exactly when the
provider's client authentication is `none`, and a secret given for a public client is refused.

The rule is `Connection.clean` (through `client_secret_error`); the services check it before a
provider is made, and the CLI, the admin and the dashboard show the refusal at their own input.
Migration 0006 (Looker providers made public): tests/connections/test_migrations.py.
"""

import pytest
from django.urls import reverse

from connections import services
from connections.models import AuthMethod, Connection, Provider
from connections.presets import PresetError, provider_from_urls
from connections.services import ServiceError
from tests.factories import ConnectionFactory, ProviderFactory
from tests.support.admin import NO_INLINE_ROWS, change_url, form_data
from tests.support.cli import command_fails, run_command

pytestmark = pytest.mark.django_db

SECRET = "CS-typed-5b2e"
LOOKER = {"preset": "looker", "preset_params": {"instance": "acme.looker.com", "api_host": "a.io"}}
ENDPOINTS = {"authorize_url": "https://pub.example/authorize", "token_url": "https://pub.example/t"}


def create(**kwargs) -> services.ConnectionSaved:
    return services.connection_create(**({"name": "BI export", "client_id": "guid-1"} | kwargs))


def refused(**kwargs) -> str:
    """Expect the secret refused, and nothing stored: no connection, no provider made."""
    providers = set(Provider.objects.values_list("pk", flat=True))
    with pytest.raises(ServiceError) as info:
        create(**kwargs)
    assert info.value.field == "client_secret", str(info.value)
    assert not Connection.objects.exists()
    assert set(Provider.objects.values_list("pk", flat=True)) == providers
    assert SECRET not in str(info.value)
    return str(info.value)


# --- services ------------------------------------------------------------------------------


def test_it_creates_a_looker_connection_without_a_secret():
    connection = create(client_secret="", **LOOKER).connection
    stored = Connection.objects.select_related("provider").get(pk=connection.pk)
    assert stored.provider.token_endpoint_auth_method == AuthMethod.NONE
    assert stored.provider.use_pkce is True
    # No secret, so no secret to rotate: the rotation reminder never counts its age.
    assert (stored.client_secret, stored.client_secret_set_at) == ("", None)


def test_it_refuses_a_secret_for_a_public_client_before_making_its_provider():
    message = refused(client_secret=SECRET, **LOOKER)
    assert "public client" in message and "Leave the secret out" in message
    refused(client_secret=SECRET, auth_method=AuthMethod.NONE, **ENDPOINTS)


def test_it_creates_from_typed_in_endpoints_as_a_public_client():
    connection = create(client_secret="", auth_method=AuthMethod.NONE, **ENDPOINTS).connection
    assert connection.provider.token_endpoint_auth_method == AuthMethod.NONE
    assert connection.provider.use_pkce is True


@pytest.mark.parametrize(
    "source",
    [
        {"preset": "xero"},
        ENDPOINTS,  # client_secret_basic unless told otherwise
        ENDPOINTS | {"auth_method": AuthMethod.CLIENT_SECRET_POST},
        {"issuer": "https://issuer.invalid"},  # refused before discovery is even tried
    ],
)
def test_it_refuses_a_blank_secret_for_a_confidential_client(source):
    message = refused(client_secret="", **source)
    assert message.startswith("A client secret is required")


def test_it_checks_the_secret_against_an_existing_provider():
    public = ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE)
    assert create(client_secret="", provider=public).connection.client_secret == ""
    with pytest.raises(ServiceError) as info:
        create(client_secret=SECRET, provider=public, slug="second")
    assert info.value.field == "client_secret"
    with pytest.raises(ServiceError) as info:
        create(client_secret="", provider=ProviderFactory(), slug="third")
    assert info.value.field == "client_secret"


def test_an_issuer_whose_provider_an_admin_made_public_takes_no_secret():
    issuer = "https://login.pub.example"
    public = ProviderFactory(
        issuer=issuer, token_endpoint_auth_method=AuthMethod.NONE, use_pkce=True
    )
    connection = create(client_secret="", issuer=issuer + "/").connection
    assert connection.provider == public and connection.client_secret == ""
    with pytest.raises(ServiceError) as info:  # no discovery: the existing provider is used
        create(client_secret=SECRET, issuer=issuer, slug="second")
    assert info.value.field == "client_secret" and "public client" in str(info.value)
    assert list(Provider.objects.all()) == [public]


def test_an_edit_refuses_a_secret_for_a_public_client_and_keeps_the_rest():
    connection = ConnectionFactory(
        provider=ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE),
        client_secret="",
        name="BI export",
    )
    with pytest.raises(ServiceError) as info:
        services.connection_update(
            connection=connection, changes={"name": "Renamed"}, client_secret=SECRET
        )
    assert info.value.field == "client_secret"
    stored = Connection.objects.get(pk=connection.pk)
    assert (stored.name, stored.client_secret) == ("BI export", "")
    services.connection_update(connection=stored, changes={"name": "Renamed"})
    assert Connection.objects.get(pk=connection.pk).name == "Renamed"


def test_a_move_to_a_public_provider_without_a_secret_removes_the_stored_one():
    public = ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE, name="Looker BI")
    connection = ConnectionFactory(provider=ProviderFactory(), client_secret=SECRET)
    saved = services.connection_update(connection=connection, changes={"provider": public})
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.provider == public
    assert (stored.client_secret, stored.client_secret_set_at) == ("", None)
    assert any("secret removed" in note and "Looker BI" in note for note in saved.notes)
    assert SECRET not in " ".join(saved.notes)


def test_a_secret_given_with_a_move_to_a_public_provider_is_refused():
    public = ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE)
    connection = ConnectionFactory(provider=ProviderFactory(), client_secret=SECRET)
    with pytest.raises(ServiceError) as info:
        services.connection_update(
            connection=connection, changes={"provider": public}, client_secret="CS-other"
        )
    assert info.value.field == "client_secret" and "Leave the secret out" in str(info.value)
    assert Connection.objects.get(pk=connection.pk).client_secret == SECRET


def test_a_move_from_a_public_provider_needs_a_secret_and_says_so():
    confidential = ProviderFactory(name="Acme API")
    public = ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE)
    connection = ConnectionFactory(provider=public, client_secret="")
    for given in (None, ""):
        with pytest.raises(ServiceError) as info:
            services.connection_update(
                connection=connection, changes={"provider": confidential}, client_secret=given
            )
        assert info.value.field == "client_secret"
        assert "Acme API" in str(info.value) and "give the client secret" in str(info.value)
        connection = Connection.objects.get(pk=connection.pk)
        assert connection.provider == public
    services.connection_update(
        connection=connection, changes={"provider": confidential}, client_secret=SECRET
    )
    stored = Connection.objects.get(pk=connection.pk)
    assert (stored.provider, stored.client_secret) == (confidential, SECRET)
    assert stored.client_secret_set_at is not None


def test_a_provider_cannot_become_public_under_connections_that_hold_a_secret():
    provider = ProviderFactory(token_endpoint_auth_method=AuthMethod.CLIENT_SECRET_POST)
    ConnectionFactory(provider=provider, slug="holds-a-secret", client_secret=SECRET)
    with pytest.raises(ServiceError) as info:
        services.provider_update(
            provider=provider, changes={"token_endpoint_auth_method": AuthMethod.NONE}
        )
    assert info.value.field == "token_endpoint_auth_method"
    assert "holds-a-secret" in str(info.value) and SECRET not in str(info.value)
    provider.refresh_from_db()
    assert provider.token_endpoint_auth_method == AuthMethod.CLIENT_SECRET_POST
    # Between two secret-based methods, the secrets fit either way.
    services.provider_update(
        provider=provider, changes={"token_endpoint_auth_method": AuthMethod.CLIENT_SECRET_BASIC}
    )


def test_a_provider_without_connections_becomes_public_only_with_pkce():
    provider = ProviderFactory(use_pkce=False)
    with pytest.raises(ServiceError) as info:
        services.provider_update(
            provider=provider, changes={"token_endpoint_auth_method": AuthMethod.NONE}
        )
    assert info.value.field == "use_pkce" and "must use PKCE" in str(info.value)
    services.provider_update(
        provider=provider,
        changes={"token_endpoint_auth_method": AuthMethod.NONE, "use_pkce": True},
    )
    assert Provider.objects.get(pk=provider.pk).token_endpoint_auth_method == AuthMethod.NONE


def test_typed_in_endpoints_never_reuse_a_provider_that_authenticates_otherwise():
    existing = provider_from_urls(ENDPOINTS["authorize_url"], ENDPOINTS["token_url"])
    with pytest.raises(PresetError) as info:
        provider_from_urls(**ENDPOINTS, auth_method=AuthMethod.NONE)
    assert info.value.field == "auth_method" and existing.slug in str(info.value)
    assert provider_from_urls(**ENDPOINTS) == existing  # left out: used as it is


# --- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def no_secret_in_env(monkeypatch):
    monkeypatch.delenv("TOKENADMIN_CLIENT_SECRET", raising=False)


LOOKER_ARGS = (
    "--preset", "looker",
    "--preset-param", "instance=acme.looker.com",
    "--preset-param", "api_host=acme.looker.com:19999",
)  # fmt: skip


def test_the_cli_creates_a_public_client_given_no_secret(no_secret_in_env):
    out, err = run_command("connection", "create", "BI", "--client-id", "guid-1", *LOOKER_ARGS)
    assert "Open this link to authorize it" in out
    assert "pass --client-secret ''" not in err  # the preset's note no longer says so
    assert Connection.objects.get(slug="bi").client_secret == ""


def test_the_cli_refuses_a_secret_for_a_public_client(no_secret_in_env):
    message = command_fails(
        "connection", "create", "BI", "--client-id", "g", "--client-secret", SECRET, *LOOKER_ARGS
    )
    assert message.startswith("--client-secret: ") and "public client" in message
    assert SECRET not in message
    assert not Provider.objects.exists()


def test_the_cli_says_where_a_needed_secret_comes_from(no_secret_in_env):
    message = command_fails("connection", "create", "X", "--client-id", "c", "--preset", "xero")
    assert message.startswith("--client-secret: A client secret is required")
    assert "--client-secret-file PATH" in message and "TOKENADMIN_CLIENT_SECRET" in message
    assert not Provider.objects.exists()


def test_the_cli_takes_auth_method_none_with_typed_in_endpoints(no_secret_in_env):
    run_command(
        "connection", "create", "Pub", "--client-id", "c",
        "--authorize-url", ENDPOINTS["authorize_url"], "--token-url", ENDPOINTS["token_url"],
        "--auth-method", "none",
    )  # fmt: skip
    provider = Connection.objects.get(slug="pub").provider
    assert provider.token_endpoint_auth_method == AuthMethod.NONE


# --- the admin -----------------------------------------------------------------------------


def admin_add(admin_client, provider: Provider, secret: str):
    return admin_client.post(
        reverse("admin:connections_connection_add"),
        {
            "name": "New export",
            "slug": "new-export",
            "provider": provider.pk,
            "client_id": "client-new",
            "new_client_secret": secret,
            "refresh_threshold": 300,
            **NO_INLINE_ROWS,
        },
    )


def test_the_admin_adds_a_public_client_without_a_secret(admin_client):
    public = ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE)
    response = admin_add(admin_client, public, "")
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Connection.objects.get(slug="new-export").client_secret == ""


def test_the_admin_shows_a_refused_secret_next_to_the_secret_field(admin_client):
    public = ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE)
    response = admin_add(admin_client, public, SECRET)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert len(errors["new_client_secret"]) == 1
    assert "public client" in errors["new_client_secret"][0]
    assert SECRET not in response.content.decode()
    assert not Connection.objects.exists()


def test_the_admin_refuses_a_provider_edit_that_breaks_its_connections(admin_client):
    provider = ProviderFactory()
    ConnectionFactory(provider=provider, slug="holds-a-secret")
    url = reverse("admin:connections_provider_change", args=[provider.pk])
    data = form_data(admin_client.get(url)) | {"token_endpoint_auth_method": "none"}
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "holds-a-secret" in errors["token_endpoint_auth_method"][0]
    assert Provider.objects.get(pk=provider.pk).token_endpoint_auth_method == "client_secret_basic"


def admin_move(admin_client, connection: Connection, provider: Provider, secret: str):
    data = form_data(admin_client.get(change_url(connection)))
    data |= {"provider": provider.pk, "new_client_secret": secret}
    return admin_client.post(change_url(connection), data, follow=True)


def test_the_admin_moves_a_connection_to_a_public_provider_and_removes_its_secret(admin_client):
    public = ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE, name="Looker BI")
    connection = ConnectionFactory(provider=ProviderFactory(), client_secret=SECRET)
    response = admin_move(admin_client, connection, public, "")
    assert response.redirect_chain, response.context["adminform"].form.errors
    stored = Connection.objects.get(pk=connection.pk)
    assert (stored.provider, stored.client_secret, stored.client_secret_set_at) == (
        public,
        "",
        None,
    )
    assert "secret removed" in response.content.decode()
    assert SECRET not in response.content.decode()


def test_the_admin_says_to_type_the_secret_when_moving_off_a_public_provider(admin_client):
    confidential = ProviderFactory(name="Acme API")
    public = ProviderFactory(token_endpoint_auth_method=AuthMethod.NONE)
    connection = ConnectionFactory(provider=public, client_secret="")
    response = admin_move(admin_client, connection, confidential, "")
    assert not response.redirect_chain
    errors = response.context["adminform"].form.errors
    assert len(errors["new_client_secret"]) == 1  # said once, with what to do
    assert "give the client secret" in errors["new_client_secret"][0]
    assert Connection.objects.get(pk=connection.pk).provider == public
    response = admin_move(admin_client, connection, confidential, SECRET)
    assert response.redirect_chain, response.context["adminform"].form.errors
    stored = Connection.objects.get(pk=connection.pk)
    assert (stored.provider, stored.client_secret) == (confidential, SECRET)


# --- the dashboard -------------------------------------------------------------------------


def dashboard_add(admin_client, preset: str, secret: str, **extra: str):
    data = {"name": "BI export", "source": "preset", "preset": preset, "client_id": "g-1"}
    return admin_client.post("/connections/add/", data | {"client_secret": secret, **extra})


def test_the_dashboard_adds_a_looker_connection_without_a_secret(admin_client):
    params = "instance=acme.looker.com\napi_host=acme.looker.com:19999"
    response = dashboard_add(admin_client, "looker", "", preset_params=params, save="1")
    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    assert "a public client" in page


def test_the_dashboard_shows_the_secret_rule_next_to_the_secret(admin_client):
    params = "instance=acme.looker.com\napi_host=acme.looker.com:19999"
    response = dashboard_add(admin_client, "looker", SECRET, preset_params=params, save="1")
    assert response.status_code == 400
    assert "public client" in response.context["form"].errors["client_secret"][0]
    assert SECRET not in response.content.decode()
    response = dashboard_add(admin_client, "google", "", save="1")
    assert response.status_code == 400
    assert "is required" in response.context["form"].errors["client_secret"][0]
    assert not Connection.objects.exists() and not Provider.objects.exists()
