"""Where a new connection's provider comes from: exactly one of an existing provider, a preset,
an issuer to discover, or typed-in endpoints. `services.connection_create` is the front doors'
way in; this module is its provider half.

A provider is made or discovered only once the client secret fits the client authentication
its source declares, so a refusal never leaves a new provider behind (`Connection.clean` then
checks the provider finally made or reused). Refusals are `PresetError`s naming the input at
fault, as those of `connections.presets`; the services turn them into `ServiceError`s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connections.models import AuthMethod, Provider
from connections.models.provider import client_secret_error
from connections.presets import (
    ENDPOINT_LABELS,
    PresetError,
    auth_method_for_issuer,
    get_preset,
    provider_from_issuer,
    provider_from_preset,
    provider_from_urls,
)
from connections.token_requests import TOKEN_REQUEST_FIELDS

# The inputs that go with typed-in endpoints only.
ENDPOINT_FIELDS = ("token_url", "revoke_url", "userinfo_url", "auth_method", *TOKEN_REQUEST_FIELDS)


def provider_from_source(
    *,
    has_secret: bool,
    provider: Provider | None,
    preset: str | None,
    preset_params: Mapping[str, str] | None,
    issuer: str | None,
    endpoints: dict[str, Any],
) -> tuple[Provider, list[str]]:
    """The provider from the one source given (`endpoints`: the typed-in endpoints and
    token-request quirks, by argument name), and notes about it (a preset's gotchas)."""
    _check_one_source(
        provider=provider,
        preset=preset,
        preset_params=preset_params,
        issuer=issuer,
        endpoints=endpoints,
    )
    if provider is not None:
        return provider, []
    if preset:
        found = get_preset(preset)
        _check_secret(found.token_endpoint_auth_method, has_secret=has_secret)
        made = provider_from_preset(found.slug, params=dict(preset_params or {}))
        return made, [f"Note on preset {found.slug}: {found.notes}"] if found.notes else []
    if issuer:
        _check_secret(auth_method_for_issuer(issuer), has_secret=has_secret)
        return provider_from_issuer(issuer), []
    auth_method = endpoints["auth_method"]
    _check_secret(auth_method or AuthMethod.CLIENT_SECRET_BASIC, has_secret=has_secret)
    return provider_from_urls(
        endpoints["authorize_url"] or "",
        endpoints["token_url"] or "",
        revoke_url=endpoints["revoke_url"] or "",
        userinfo_url=endpoints["userinfo_url"] or "",
        auth_method=auth_method,
        token_request={name: endpoints[name] for name in TOKEN_REQUEST_FIELDS},
    ), []


def _check_one_source(
    *,
    provider: Provider | None,
    preset: str | None,
    preset_params: Mapping[str, str] | None,
    issuer: str | None,
    endpoints: dict[str, Any],
) -> None:
    """Refuse no source or two, and inputs that belong to another source than the one given."""
    sources = {"provider": provider, "preset": preset, "issuer": issuer}
    sources["authorize_url"] = endpoints["authorize_url"]
    given = [name for name, value in sources.items() if value]
    if len(given) != 1:
        raise PresetError(
            "Give the provider one way: an existing provider, a preset, an issuer to discover, "
            "or its authorization and token endpoints.",
            field=given[1] if given else None,
        )
    if preset_params and not preset:
        raise PresetError("Preset parameters go with a preset.", field="preset_params")
    for name in ENDPOINT_FIELDS:
        if endpoints[name] and given != ["authorize_url"]:
            if name in TOKEN_REQUEST_FIELDS:
                message = (
                    "Token-request parameters, headers and encoding go with typed-in endpoints; "
                    "those of a preset or discovered provider are edited on the provider."
                )
            else:
                message = (
                    f"{ENDPOINT_LABELS.get(name, 'A client authentication method')} goes with "
                    "typed-in endpoints, after the authorization endpoint."
                )
            raise PresetError(message, field=name)
    if given == ["authorize_url"] and not endpoints["token_url"]:
        raise PresetError("The authorization endpoint needs a token endpoint.", field="token_url")


def _check_secret(auth_method: str, *, has_secret: bool) -> None:
    if error := client_secret_error(auth_method=auth_method, has_secret=has_secret):
        raise PresetError(error, field="client_secret")
