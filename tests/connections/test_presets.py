from datetime import timedelta

import pytest

from connections.models import AuthMethod, Provider, RefreshExpiry
from connections.presets import (
    EXCLUDED,
    PresetError,
    get_preset,
    list_presets,
    provider_from_issuer,
    provider_from_preset,
    provider_from_urls,
)


def test_it_lists_presets_for_authorization_code_providers_only():
    slugs = {preset.slug for preset in list_presets()}
    assert len(slugs) == 25
    assert {"google", "microsoft", "salesforce", "xero", "linkedin", "okta"} <= slugs
    assert not slugs & set(EXCLUDED)
    assert {"tableau", "marketo", "facebook", "mailchimp"} == set(EXCLUDED)


@pytest.mark.parametrize("slug", ["marketo", "tableau"])
def test_it_says_why_a_provider_has_no_preset(slug):
    with pytest.raises(PresetError, match="There is no preset") as info:
        get_preset(slug)
    assert EXCLUDED[slug] in str(info.value)


def test_it_names_the_known_presets_for_an_unknown_one():
    with pytest.raises(PresetError, match=r"Unknown preset 'gogle'.*google") as info:
        get_preset("gogle")
    assert info.value.field == "preset"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [{}, {"tenant": "a b"}, {"tenant": "t", "region": "eu"}],
)
def test_it_never_names_a_command_line_option_in_its_messages(params):
    with pytest.raises(PresetError) as info:
        provider_from_preset("microsoft", params=params)
    assert "--" not in str(info.value)


def test_it_cites_sources_for_every_preset():
    for preset in list_presets():
        assert preset.source, preset.slug
        assert all(url.startswith("https://") for url in preset.source), preset.slug


@pytest.mark.django_db
def test_it_makes_a_valid_provider_from_every_preset():
    for preset in list_presets():
        params = {name: "example.test" for name in preset.params}
        provider = provider_from_preset(preset.slug, params=params)
        provider.full_clean()  # URLField validation: every URL absolute, no placeholder left
        for url in (provider.authorize_url, provider.token_url, provider.issuer):
            assert "{" not in url, (preset.slug, url)
        assert provider.preset == preset.slug
        assert provider.token_endpoint_auth_method in AuthMethod.values


@pytest.mark.django_db
def test_it_copies_token_behaviour_from_the_preset():
    provider = provider_from_preset("linkedin", params={})
    assert provider.slug == "linkedin"
    assert provider.refresh_token_expiry == RefreshExpiry.ABSOLUTE
    assert provider.refresh_token_lifetime == timedelta(days=365)
    assert provider.access_token_lifetime == timedelta(seconds=5184000)
    assert provider.use_pkce is False
    assert provider.rotates_refresh_tokens is None

    google = provider_from_preset("google", params={})
    assert google.extra_authorize_params == {"access_type": "offline", "prompt": "consent"}
    assert google.token_endpoint_auth_method == AuthMethod.CLIENT_SECRET_POST
    assert google.rotates_refresh_tokens is False


@pytest.mark.django_db
def test_it_fills_placeholders_and_names_the_provider_after_them():
    provider = provider_from_preset("microsoft", params={"tenant": "contoso.onmicrosoft.com"})
    assert provider.slug == "microsoft-contoso-onmicrosoft-com"
    assert provider.authorize_url == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
    )
    assert provider.token_url.endswith("/contoso.onmicrosoft.com/oauth2/v2.0/token")
    assert provider.default_scopes == "offline_access"
    assert provider.refresh_token_expiry == RefreshExpiry.SLIDING


@pytest.mark.django_db
def test_it_fills_placeholders_in_authorize_params():
    provider = provider_from_preset(
        "auth0", params={"tenant": "acme", "api_identifier": "https://api.acme.test"}
    )
    assert provider.slug == "auth0-acme"
    assert provider.issuer == "https://acme.auth0.com/"
    assert provider.extra_authorize_params == {"audience": "https://api.acme.test"}


@pytest.mark.django_db
def test_it_reuses_the_provider_for_the_same_preset_and_params():
    first = provider_from_preset("microsoft", params={"tenant": "contoso"})
    again = provider_from_preset("microsoft", params={"tenant": "contoso"})
    other = provider_from_preset("microsoft", params={"tenant": "fabrikam"})
    assert again.pk == first.pk
    assert other.pk != first.pk
    assert Provider.objects.count() == 2


@pytest.mark.django_db
def test_it_refuses_to_reuse_a_provider_made_from_another_preset():
    Provider.objects.create(
        slug="google",
        name="x",
        preset="xero",
        authorize_url="https://a.test/",
        token_url="https://a.test/t",
    )
    with pytest.raises(PresetError, match="made from preset 'xero'"):
        provider_from_preset("google", params={})


@pytest.mark.django_db
def test_it_rejects_a_placeholder_value_that_makes_an_invalid_url():
    with pytest.raises(
        PresetError, match="looker's authorize_url must be an absolute http"
    ) as info:
        provider_from_preset("looker", params={"instance": "nodots", "api_host": "x.test"})
    assert info.value.field == "preset_params"


@pytest.mark.django_db
def test_it_requires_every_placeholder_value():
    with pytest.raises(PresetError, match="needs a value for tenant") as info:
        provider_from_preset("microsoft", params={})
    assert info.value.field == "preset_params"
    assert not Provider.objects.exists()


@pytest.mark.django_db
def test_it_rejects_parameters_the_preset_does_not_take():
    with pytest.raises(PresetError, match="does not take region; it takes tenant"):
        provider_from_preset("microsoft", params={"tenant": "contoso", "region": "eu"})


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["evil.test/x", "a b", "x?y=1", "user@evil.test"])
def test_it_keeps_placeholder_values_out_of_url_structure(value):
    with pytest.raises(PresetError, match=r"The tenant value .* cannot go into a URL"):
        provider_from_preset("microsoft", params={"tenant": value})


@pytest.mark.django_db
def test_it_builds_a_provider_by_discovery(auth_server):
    provider = provider_from_issuer(auth_server.issuer)
    assert provider.issuer.rstrip("/") == auth_server.issuer
    assert provider.authorize_url == auth_server.authorize_url
    assert provider.token_url == auth_server.token_url
    assert provider.userinfo_url == auth_server.userinfo_url
    assert provider.introspect_url == ""  # the test server publishes neither endpoint
    assert provider.revoke_url == ""
    assert provider.default_scopes == "openid offline_access"
    assert provider.extra_authorize_params == {"prompt": "consent"}
    assert provider.token_endpoint_auth_method == AuthMethod.CLIENT_SECRET_BASIC
    port = auth_server.base_url.rsplit(":", 1)[1]
    assert provider.slug == f"127-0-0-1-{port}-o"

    assert provider_from_issuer(auth_server.issuer + "/").pk == provider.pk
    assert Provider.objects.count() == 1


@pytest.mark.django_db
def test_it_reports_a_failed_discovery(auth_server):
    with pytest.raises(PresetError, match=r"Discovery failed for .*/nothing-here") as info:
        provider_from_issuer(auth_server.base_url + "/nothing-here")
    assert info.value.field == "issuer"
    assert not Provider.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorize_url",
    ["ftp://example.test/auth", "/oauth/authorize", "example.test/auth", "https://exa mple/", ""],
)
def test_it_rejects_urls_that_are_not_absolute_http(authorize_url):
    with pytest.raises(
        PresetError, match="authorization endpoint must be an absolute http"
    ) as info:
        provider_from_urls(authorize_url, "https://example.test/token")
    assert info.value.field == "authorize_url"


@pytest.mark.django_db
def test_it_builds_and_reuses_a_provider_from_urls():
    provider = provider_from_urls(
        "https://id.example.test/authorize",
        "https://id.example.test/token",
        auth_method=AuthMethod.CLIENT_SECRET_POST,
    )
    assert provider.slug == "id-example-test"
    assert provider.token_endpoint_auth_method == AuthMethod.CLIENT_SECRET_POST
    assert provider.refresh_token_expiry == RefreshExpiry.UNKNOWN
    same = provider_from_urls("https://id.example.test/authorize", "https://id.example.test/token")
    assert same.pk == provider.pk
    other = provider_from_urls("https://id.example.test/v2/auth", "https://id.example.test/v2/t")
    assert other.slug == "id-example-test-2"
