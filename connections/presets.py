"""Provider presets (data in `presets.json`) and the three ways to make a Provider.

A preset holds what the provider documentation (cited in each preset's `source`) says about
one authorization server: endpoints, the scopes and authorize parameters
needed to get a refresh token at all, client authentication, and token lifetimes. URLs may hold
placeholders such as `{tenant}`; `provider_from_preset(..., params={"tenant": "contoso"})` fills
them. A Provider can also come from OIDC / RFC 8414 discovery (`provider_from_issuer`) or from
typed-in URLs (`provider_from_urls`).

Some providers in the reference are left out on purpose, each with its reason in `EXCLUDED`: a
Connection needs an authorization-code grant that yields a refresh token, and
`connections.authorize` refuses any grant without one.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from connections import oauth
from connections.models import AuthMethod, BodyEncoding, Provider, RefreshExpiry
from connections.models.provider import pkce_error, validate_token_request
from connections.token_requests import settings_that_differ, token_request_quirks

PRESETS_FILE = Path(__file__).with_name("presets.json")

# Providers in the reference that are not presets, and why (shown when someone asks for one).
EXCLUDED = {
    "tableau": "Tableau's REST API signs in with personal access tokens, not OAuth 2.0 "
    "authorization codes.",
    "marketo": "Marketo only offers the client_credentials grant: there is no refresh token to "
    "keep alive; request a new access token instead.",
    "facebook": "Facebook issues no refresh tokens (long-lived user tokens cannot be renewed "
    "once expired), so there is no grant to keep alive.",
    "mailchimp": "Mailchimp issues no refresh tokens (its access tokens never expire), so there "
    "is no grant to keep alive.",
}

# Scopes without which providers issue no refresh token (OIDC Core §11; Salesforce, Snowflake).
REFRESH_SCOPES = frozenset({"offline_access", "refresh_token"})
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# A placeholder value becomes part of a host or path: no separators, no spaces.
SAFE_PARAM = re.compile(r"^[A-Za-z0-9._:-]+$")
URL_VALIDATOR = URLValidator(schemes=["http", "https"])
SLUG_MAX = 50  # Provider.slug is a SlugField(max_length=50)
# How messages name a typed-in endpoint (never by a CLI option or form field).
ENDPOINT_LABELS = {
    "authorize_url": "The authorization endpoint",
    "token_url": "The token endpoint",
    "revoke_url": "The revocation endpoint",
    "userinfo_url": "The userinfo endpoint",
}


class PresetError(ValueError):
    """A preset, its parameters or a provider URL cannot be used; the message says why.

    `field` names the input at fault (`preset`, `preset_params`, `issuer`, `authorize_url`, ...),
    so each front door can point at its own option or form field; messages never name one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Preset:
    slug: str
    name: str
    authorize_url: str
    token_url: str
    token_endpoint_auth_method: str
    refresh_token_expiry: str
    revoke_url: str = ""
    introspect_url: str = ""
    userinfo_url: str = ""
    issuer: str = ""
    params: dict[str, str] = field(default_factory=dict)  # placeholder → what to put there
    default_scopes: str = ""
    extra_authorize_params: dict[str, str] = field(default_factory=dict)
    use_pkce: bool = True
    # How the token endpoint wants its requests (code exchange and refresh alike).
    token_request_params: dict[str, str] = field(default_factory=dict)
    token_request_headers: dict[str, str] = field(default_factory=dict)
    token_request_encoding: str = BodyEncoding.FORM
    access_token_lifetime: int | None = None  # seconds
    refresh_token_lifetime: int | None = None  # days
    rotates: bool | None = None
    notes: str = ""
    source: tuple[str, ...] = ()
    # Where each quirk is documented: "token_request_params.<name>",
    # "token_request_headers.<Name>", "token_request_encoding" or "access_token_lifetime" → URL.
    # Kept for readers and tests; never copied to a Provider.
    quirk_sources: dict[str, str] = field(default_factory=dict)

    def quirks(self) -> list[str]:
        """The token-request settings this preset changes from the plain RFC 6749 request."""
        names = [f"token_request_params.{name}" for name in self.token_request_params]
        names += [f"token_request_headers.{name}" for name in self.token_request_headers]
        if self.token_request_encoding != BodyEncoding.FORM:
            names.append("token_request_encoding")
        return names

    def placeholders(self) -> list[str]:
        """Placeholder names used anywhere in the preset, in order of first use."""
        texts = [self.authorize_url, self.token_url, self.revoke_url, self.introspect_url]
        texts += [self.userinfo_url, self.issuer, *self.extra_authorize_params.values()]
        return list(dict.fromkeys(name for text in texts for name in PLACEHOLDER.findall(text)))


def _load_preset(data: dict[str, Any]) -> Preset:
    data = dict(data)
    data["source"] = tuple(data.get("source", ()))
    unknown = sorted(set(data) - {f.name for f in fields(Preset)})
    if unknown:
        raise PresetError(f"preset {data.get('slug')}: unknown keys {unknown}")
    preset = Preset(**data)
    if preset.token_endpoint_auth_method not in AuthMethod.values:
        raise PresetError(f"preset {preset.slug}: bad token_endpoint_auth_method")
    if error := pkce_error(auth_method=preset.token_endpoint_auth_method, use_pkce=preset.use_pkce):
        raise PresetError(f"preset {preset.slug}: {error}")
    if preset.refresh_token_expiry not in RefreshExpiry.values:
        raise PresetError(f"preset {preset.slug}: bad refresh_token_expiry")
    undocumented = set(preset.placeholders()) ^ set(preset.params)
    if undocumented:
        raise PresetError(f"preset {preset.slug}: placeholders and params differ: {undocumented}")
    try:
        validate_token_request(
            params=preset.token_request_params,
            headers=preset.token_request_headers,
            encoding=preset.token_request_encoding,
        )
    except ValidationError as exc:
        raise PresetError(f"preset {preset.slug}: {' '.join(exc.messages)}") from None
    unsourced = set(preset.quirks()) - set(preset.quirk_sources)
    if unsourced:
        raise PresetError(f"preset {preset.slug}: no source for {sorted(unsourced)}")
    return preset


@cache
def _presets() -> dict[str, Preset]:
    with PRESETS_FILE.open(encoding="utf-8") as fh:
        return {item["slug"]: _load_preset(item) for item in json.load(fh)}


def list_presets() -> list[Preset]:
    return sorted(_presets().values(), key=lambda preset: preset.slug)


def get_preset(slug: str) -> Preset:
    try:
        return _presets()[slug]
    except KeyError:
        if slug in EXCLUDED:
            raise PresetError(
                f"There is no preset {slug!r}: {EXCLUDED[slug]}", field="preset"
            ) from None
        known = ", ".join(sorted(_presets()))
        raise PresetError(
            f"Unknown preset {slug!r}. Known presets: {known}.", field="preset"
        ) from None


def validate_url(url: str, *, what: str, field: str | None = None) -> str:
    """Return `url` if it is an absolute http(s) URL, else raise PresetError naming `what`."""
    try:
        # The same check as Provider's URLFields, so admin edits accept what we store.
        URL_VALIDATOR(url)
    except ValidationError:
        raise PresetError(
            f"{what} must be an absolute http(s) URL, got {url!r}.", field=field
        ) from None
    return url


def _fill(text: str, params: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda match: params[match.group(1)], text)


def _endpoint_params(preset: Preset) -> list[str]:
    """Placeholders in the authorize and token URLs: the ones that make a distinct server."""
    return list(dict.fromkeys(PLACEHOLDER.findall(preset.authorize_url + preset.token_url)))


def _checked_params(preset: Preset, params: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(params) - set(preset.params))
    if unknown:
        takes = ", ".join(preset.params) or "no parameters"
        raise PresetError(
            f"Preset {preset.slug!r} does not take {', '.join(unknown)}; it takes {takes}.",
            field="preset_params",
        )
    missing = [name for name in preset.params if not params.get(name)]
    if missing:
        hints = "; ".join(f"{name}: {preset.params[name]}" for name in missing)
        raise PresetError(
            f"Preset {preset.slug!r} needs a value for {', '.join(missing)} ({hints}).",
            field="preset_params",
        )
    for name in _endpoint_params(preset):
        if not SAFE_PARAM.match(params[name]):
            raise PresetError(
                f"The {name} value {params[name]!r} cannot go into a URL "
                "(use letters, digits and . - _ :).",
                field="preset_params",
            )
    return params


def provider_slug_for_preset(preset: Preset, params: dict[str, str]) -> str:
    """`microsoft` for a plain preset; `microsoft-contoso` with tenant=contoso.

    Two tenants of one preset are two authorization servers, so two providers.
    """
    parts = [preset.slug, *(params[name].replace(".", "-") for name in _endpoint_params(preset))]
    return slugify("-".join(parts))[:SLUG_MAX].strip("-")


def _unique_slug(base: str) -> str:
    base = slugify(re.sub(r"[.:/]", "-", base))[:SLUG_MAX].strip("-") or "provider"
    slug, n = base, 2
    while Provider.objects.filter(slug=slug).exists():
        suffix = f"-{n}"
        slug, n = base[: SLUG_MAX - len(suffix)] + suffix, n + 1
    return slug


def _create(slug: str, **fields: Any) -> Provider:
    """Create the provider, or return the one a concurrent caller just created as `slug`."""
    try:
        with transaction.atomic():
            return Provider.objects.create(slug=slug, **fields)
    except IntegrityError:
        return Provider.objects.get(slug=slug)


def provider_from_preset(slug: str, *, params: dict[str, str] | None = None) -> Provider:
    """The Provider for preset `slug` with its placeholders filled; reused if it exists."""
    preset = get_preset(slug)
    params = _checked_params(preset, dict(params or {}))
    provider_slug = provider_slug_for_preset(preset, params)
    existing = Provider.objects.filter(slug=provider_slug).first()
    if existing is not None:
        if existing.preset not in ("", preset.slug):
            raise PresetError(
                f"Provider {provider_slug!r} already exists and was made from preset "
                f"{existing.preset!r}, not {preset.slug!r}.",
                field="preset",
            )
        return existing
    urls = {
        name: _fill(getattr(preset, name), params)
        for name in ("authorize_url", "token_url", "revoke_url", "introspect_url", "userinfo_url")
    }
    issuer = _fill(preset.issuer, params)
    for name, url in [*urls.items(), ("issuer", issuer)]:
        if url:
            validate_url(url, what=f"Preset {preset.slug}'s {name}", field="preset_params")
    lifetime_days = preset.refresh_token_lifetime
    return _create(
        provider_slug,
        name=preset.name,
        preset=preset.slug,
        issuer=issuer,
        default_scopes=preset.default_scopes,
        extra_authorize_params={
            key: _fill(value, params) for key, value in preset.extra_authorize_params.items()
        },
        token_endpoint_auth_method=preset.token_endpoint_auth_method,
        use_pkce=preset.use_pkce,
        token_request_params=dict(preset.token_request_params),
        token_request_headers=dict(preset.token_request_headers),
        token_request_encoding=preset.token_request_encoding,
        access_token_lifetime=(
            timedelta(seconds=preset.access_token_lifetime)
            if preset.access_token_lifetime
            else None
        ),
        refresh_token_lifetime=timedelta(days=lifetime_days) if lifetime_days else None,
        refresh_token_expiry=preset.refresh_token_expiry,
        rotates_refresh_tokens=preset.rotates,
        **urls,
    )


def _same_issuer(issuer: str) -> Provider | None:
    wanted = issuer.rstrip("/")
    return Provider.objects.filter(issuer__in=[wanted, wanted + "/"]).first()


def _pick_auth_method(supported: tuple[str, ...]) -> str:
    # RFC 8414 §2: an absent list means client_secret_basic, which RFC 6749 §2.3.1 makes mandatory.
    supported = supported or (AuthMethod.CLIENT_SECRET_BASIC,)
    for method in (AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST):
        if method in supported:
            return method
    raise PresetError(
        "The provider supports neither client_secret_basic nor client_secret_post "
        f"(it lists {', '.join(supported)}); tokenadmin cannot authenticate to it.",
        field="issuer",
    )


def auth_method_for_issuer(issuer: str) -> str:
    """The client authentication a connection to `issuer` will use, known before discovery: that
    of the provider already made for it (an admin may have switched it to none), else the
    picker's default (both methods discovery can pick need a client secret)."""
    existing = _same_issuer(issuer)
    if existing is not None:
        return existing.token_endpoint_auth_method
    return _pick_auth_method(())


def provider_from_issuer(issuer: str) -> Provider:
    """A Provider from OIDC Discovery / RFC 8414 metadata; reused if one has this issuer.

    Asks for `openid` (so the account can be pinned from the id_token) and `offline_access`
    with `prompt=consent` (OIDC Core §11: how OpenID providers issue refresh tokens) when the
    provider lists them.
    """
    validate_url(issuer, what="The issuer", field="issuer")
    existing = _same_issuer(issuer)
    if existing is not None:
        return existing
    try:
        meta = oauth.discover(issuer)
    except oauth.OAuthError as exc:
        reason = exc.description or exc.code
        raise PresetError(f"Discovery failed for {issuer}: {reason}.", field="issuer") from exc
    existing = _same_issuer(meta.issuer)
    if existing is not None:
        return existing
    for name in ("authorize_url", "token_url", "revoke_url", "introspect_url", "userinfo_url"):
        if getattr(meta, name):
            validate_url(getattr(meta, name), what=f"The discovered {name}", field="issuer")
    scopes = [s for s in ("openid", "offline_access") if s in meta.scopes_supported]
    parts = urlsplit(meta.issuer)
    label = (parts.netloc + parts.path).rstrip("/")
    return _create(
        _unique_slug(label),
        name=label,
        issuer=meta.issuer,
        authorize_url=meta.authorize_url,
        token_url=meta.token_url,
        revoke_url=meta.revoke_url,
        introspect_url=meta.introspect_url,
        userinfo_url=meta.userinfo_url,
        default_scopes=" ".join(scopes),
        extra_authorize_params={"prompt": "consent"} if "offline_access" in scopes else {},
        token_endpoint_auth_method=_pick_auth_method(meta.auth_methods_supported),
    )


def provider_from_urls(
    authorize_url: str,
    token_url: str,
    *,
    revoke_url: str = "",
    userinfo_url: str = "",
    auth_method: str | None = None,
    token_request: Mapping[str, Any] | None = None,
) -> Provider:
    """A Provider from typed-in endpoints; reused if one has the same two endpoints.

    `auth_method` is the client authentication (None: client_secret_basic for a new provider)
    and `token_request` holds the token-request quirks (`connections.token_requests`; None or empty:
    the plain RFC 6749 request). Reusing a provider whose client authentication or quirks differ
    from those given is refused: it would change the token requests of every connection at it.
    Token behaviour is unknown until a token response or an override says otherwise.
    """
    endpoints = {
        "authorize_url": authorize_url,
        "token_url": token_url,
        "revoke_url": revoke_url,
        "userinfo_url": userinfo_url,
    }
    for name, url in endpoints.items():
        if url or name in ("authorize_url", "token_url"):
            validate_url(url, what=ENDPOINT_LABELS[name], field=name)
    if auth_method is not None and auth_method not in AuthMethod.values:
        raise PresetError(
            f"Unknown client authentication method {auth_method!r}.", field="auth_method"
        )
    try:
        quirks = token_request_quirks(token_request or {})
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise PresetError(" ".join(messages), field=field) from None
    existing = Provider.objects.filter(authorize_url=authorize_url, token_url=token_url).first()
    if existing is not None:
        if differ := settings_that_differ(existing, quirks=quirks, auth_method=auth_method):
            raise PresetError(
                f"Provider {existing.slug!r} already has these endpoints, with other token-request "
                "settings; edit the provider instead, or leave them out to use it as it is.",
                field=differ[0],
            )
        return existing
    host = urlsplit(token_url).netloc
    return _create(
        _unique_slug(host),
        name=host,
        authorize_url=authorize_url,
        token_url=token_url,
        revoke_url=revoke_url,
        userinfo_url=userinfo_url,
        token_endpoint_auth_method=auth_method or AuthMethod.CLIENT_SECRET_BASIC,
        **quirks,
    )
