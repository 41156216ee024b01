"""Every preset is complete and consistent, read from `presets.json` as it is stored.

The raw file is read (not only the loaded `Preset`s), so a misspelt or missing key, a quirk
without its source or a placeholder nobody declares fails here with the preset's name, and the
loader is shown to refuse each kind of fault on its own.
"""

import json
import re
from dataclasses import fields
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError

from connections.models import AuthMethod, BodyEncoding, RefreshExpiry
from connections.models.provider import validate_token_request
from connections.presets import PRESETS_FILE, Preset, PresetError, _load_preset, list_presets

RAW = json.loads(PRESETS_FILE.read_text(encoding="utf-8"))
BY_SLUG = {item["slug"]: item for item in RAW}
SLUGS = sorted(BY_SLUG)
URL_FIELDS = (
    "authorize_url",
    "token_url",
    "revoke_url",
    "introspect_url",
    "userinfo_url",
    "issuer",
)
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
QUIRK_KEY = re.compile(r"^(token_request_params|token_request_headers)\.(.+)$")


def quirks(item: dict) -> set[str]:
    """The non-standard parts of a preset's token requests, named as in `quirk_sources`."""
    names = {f"token_request_params.{name}" for name in item["token_request_params"]}
    names |= {f"token_request_headers.{name}" for name in item["token_request_headers"]}
    if item["token_request_encoding"] != BodyEncoding.FORM:
        names.add("token_request_encoding")
    return names


def is_https(url: str) -> bool:
    parts = urlsplit(PLACEHOLDER.sub("example", url))
    return parts.scheme == "https" and bool(parts.netloc) and " " not in url


def test_the_catalogue_has_one_entry_per_slug_and_every_entry_loads():
    assert len(RAW) == len(BY_SLUG) == 25
    assert [preset.slug for preset in list_presets()] == SLUGS


@pytest.mark.parametrize("slug", SLUGS)
def test_every_preset_states_every_field(slug):
    # A misspelt key would fail the loader; a missing one would silently take a default.
    assert set(BY_SLUG[slug]) == {f.name for f in fields(Preset)}


@pytest.mark.parametrize("slug", SLUGS)
def test_every_preset_url_is_https(slug):
    item = BY_SLUG[slug]
    assert item["authorize_url"] and item["token_url"]
    for name in URL_FIELDS:
        if item[name]:
            assert is_https(item[name]), (name, item[name])


@pytest.mark.parametrize("slug", SLUGS)
def test_every_placeholder_is_declared_and_every_declared_one_is_used(slug):
    item = BY_SLUG[slug]
    texts = [item[name] for name in URL_FIELDS] + list(item["extra_authorize_params"].values())
    used = {name for text in texts for name in PLACEHOLDER.findall(text)}
    assert used == set(item["params"])
    assert all(isinstance(hint, str) and hint.strip() for hint in item["params"].values())


@pytest.mark.parametrize("slug", SLUGS)
def test_every_lifetime_is_positive_and_matches_how_refresh_tokens_die(slug):
    item = BY_SLUG[slug]
    for name in ("access_token_lifetime", "refresh_token_lifetime"):
        value = item[name]
        assert value is None or (type(value) is int and value > 0), (name, value)
    kind = item["refresh_token_expiry"]
    assert kind in RefreshExpiry.values
    if kind in (RefreshExpiry.ABSOLUTE, RefreshExpiry.SLIDING):
        assert item["refresh_token_lifetime"], "a refresh token that expires needs a lifetime"
    if kind == RefreshExpiry.NONE:
        assert item["refresh_token_lifetime"] is None, "a refresh token that never expires"


@pytest.mark.parametrize("slug", SLUGS)
def test_every_preset_has_its_basics(slug):
    item = BY_SLUG[slug]
    assert item["name"].strip() and item["notes"].strip()
    assert item["token_endpoint_auth_method"] in AuthMethod.values
    assert isinstance(item["use_pkce"], bool)
    assert item["rotates"] in (True, False, None)
    assert all(isinstance(v, str) for v in item["extra_authorize_params"].values())


@pytest.mark.parametrize("slug", SLUGS)
def test_every_preset_cites_https_sources(slug):
    sources = BY_SLUG[slug]["source"]
    assert sources and len(sources) == len(set(sources))
    assert all(is_https(url) for url in sources), sources


@pytest.mark.parametrize("slug", SLUGS)
def test_token_request_quirks_are_well_formed(slug):
    item = BY_SLUG[slug]
    assert item["token_request_encoding"] in BodyEncoding.values
    for name in ("token_request_params", "token_request_headers"):
        assert isinstance(item[name], dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in item[name].items())
    validate_token_request(
        params=item["token_request_params"],
        headers=item["token_request_headers"],
        encoding=item["token_request_encoding"],
    )


@pytest.mark.parametrize("slug", SLUGS)
def test_every_quirk_has_a_source_and_every_source_a_quirk(slug):
    item = BY_SLUG[slug]
    sources = item["quirk_sources"]
    assert quirks(item) <= set(sources), "a quirk without a source"
    for key, url in sources.items():
        assert isinstance(url, str) and is_https(url), (key, url)
        match = QUIRK_KEY.match(key)
        if match:
            assert match.group(2) in item[match.group(1)], f"{key} names nothing set"
        elif key == "token_request_encoding":
            assert item[key] != BodyEncoding.FORM, "form is the default, not a quirk"
        else:
            assert key == "access_token_lifetime" and item[key], f"{key} is not a quirk"


def test_the_documented_quirks_are_in_the_catalogue():
    # The providers whose documentation asks for more than RFC 6749's form request.
    assert BY_SLUG["shopify"]["token_request_params"] == {"expiring": "1"}
    assert BY_SLUG["intuit-quickbooks"]["token_request_headers"]["Accept"] == "application/json"
    assert BY_SLUG["github-app"]["token_request_headers"]["Accept"] == "application/json"
    encodings = {slug: item["token_request_encoding"] for slug, item in BY_SLUG.items()}
    assert {slug for slug, encoding in encodings.items() if encoding == "json"} == {
        "atlassian",
        "notion",
        "looker",
    }
    salesforce = BY_SLUG["salesforce"]
    assert salesforce["access_token_lifetime"] == 7200  # the session timeout's default, 2 h
    assert "access_token_lifetime" in salesforce["quirk_sources"]


# --- the loader refuses each kind of fault ------------------------------------------------


def broken(slug: str = "shopify", **changes: object) -> dict:
    return json.loads(json.dumps(BY_SLUG[slug])) | changes


@pytest.mark.parametrize(
    ("item", "words"),
    [
        (broken(quirk_sources={}), "no source for ['token_request_params.expiring']"),
        (broken(token_request_headers={"Authorization": "Basic x"}), "tokenadmin sets it"),
        (broken(token_request_params={"grant_type": "x"}), "sends it itself"),
        (broken(token_request_encoding="xml"), "must be form or json"),
        (broken(params={}), "placeholders and params differ"),
        (broken(refresh_token_expiry="sometimes"), "bad refresh_token_expiry"),
        (broken(token_endpoint_auth_method="private_key_jwt"), "bad token_endpoint_auth_method"),
        (broken(token_endpoint_auth_method="none", use_pkce=False), "must use PKCE"),
    ],
)
def test_the_loader_refuses_a_faulty_preset_naming_it(item, words):
    with pytest.raises(PresetError) as info:
        _load_preset(item)
    assert str(info.value).startswith("preset shopify: ") and words in str(info.value)


def test_the_loader_refuses_a_misspelt_key():
    with pytest.raises(PresetError, match=r"shopify: unknown keys \['token_request_header'\]"):
        _load_preset(broken(token_request_header={}))


def test_the_quirk_rules_are_the_models():
    with pytest.raises(ValidationError):
        validate_token_request(params={}, headers={"Content-Type": "text/plain"})
