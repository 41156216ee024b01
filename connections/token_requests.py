"""A Provider's token-request quirks: what the code exchange and every refresh send besides the
plain RFC 6749 request (extra parameters, extra headers, a JSON body). Typed in with endpoints,
validated as the model validates them; a provider reused for typed-in endpoints must already send
what was typed in (`settings_that_differ`)."""

from collections.abc import Mapping
from typing import Any

from connections.models import Provider
from connections.models.provider import validate_token_request

TOKEN_REQUEST_FIELDS = ("token_request_params", "token_request_headers", "token_request_encoding")
PLAIN = {"token_request_params": {}, "token_request_headers": {}, "token_request_encoding": "form"}
# Provider fields that arrive as another argument: the name to point at when one differs.
_GIVEN_AS = {"token_endpoint_auth_method": "auth_method"}


def token_request_quirks(given: Mapping[str, Any]) -> dict[str, Any]:
    """The token-request fields of a new Provider from `given` (blank: plain). Raises the model's
    ValidationError, keyed by the field at fault."""
    quirks = {name: given.get(name) or PLAIN[name] for name in TOKEN_REQUEST_FIELDS}
    validate_token_request(
        params=quirks["token_request_params"],
        headers=quirks["token_request_headers"],
        encoding=quirks["token_request_encoding"],
    )
    for name in ("token_request_params", "token_request_headers"):
        quirks[name] = dict(quirks[name])
    return quirks


def settings_that_differ(
    provider: Provider, *, quirks: Mapping[str, Any], auth_method: str | None
) -> list[str]:
    """The inputs (by argument name) that ask `provider` to make its token requests otherwise:
    the quirks given (not left plain) and the client authentication (if given) it does not have.
    Reusing it anyway would change the token requests of every connection at it."""
    given = {name: value for name, value in quirks.items() if value != PLAIN[name]}
    if auth_method is not None:
        given["token_endpoint_auth_method"] = auth_method
    differ = [name for name, value in given.items() if getattr(provider, name) != value]
    return [_GIVEN_AS.get(name, name) for name in differ]
