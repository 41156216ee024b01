"""Providers: endpoints and how their tokens behave."""

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class AuthMethod(models.TextChoices):
    """How the client authenticates at the token endpoint (RFC 6749 §2.3.1; RFC 7591 §2)."""

    CLIENT_SECRET_BASIC = "client_secret_basic", "HTTP Basic (client_secret_basic)"
    CLIENT_SECRET_POST = "client_secret_post", "Form body (client_secret_post)"
    # A public client (RFC 6749 §2.1): client_id in the body, no secret; PKCE protects the code.
    NONE = "none", "No secret: public client with PKCE (none)"


def client_secret_error(*, auth_method: str, has_secret: bool) -> str | None:
    """Why a connection's client secret does not fit its provider's client authentication, or
    None when it does: every method but `none` needs one; a public client has none, and a secret
    given for it would be stored but never sent, which only hides a misconfiguration."""
    if auth_method == AuthMethod.NONE and has_secret:
        return (
            "The provider's client authentication is none (a public client, RFC 7591 §2): it "
            "has no client secret and tokenadmin never sends one. Leave the secret out."
        )
    if auth_method != AuthMethod.NONE and not has_secret:
        return f"A client secret is required: the provider authenticates with {auth_method}."
    return None


def pkce_error(*, auth_method: str, use_pkce: bool) -> str | None:
    """A public client must use PKCE: with no secret, the code verifier (RFC 7636 §1) is all
    that stops an intercepted authorization code from being redeemed (RFC 9700 §2.1.1)."""
    if auth_method == AuthMethod.NONE and not use_pkce:
        return "A public client (client authentication none) must use PKCE."
    return None


class BodyEncoding(models.TextChoices):
    FORM = "form", "Form (application/x-www-form-urlencoded)"
    JSON = "json", "JSON (application/json)"


# Headers tokenadmin sets itself on a token request, and from what; an extra header may not
# replace one silently (a provider quirk must not undo client authentication or the encoding).
RESERVED_TOKEN_HEADERS = {
    "authorization": "the client authentication method",
    "content-type": "the body encoding",
    "content-length": "the body",
    "host": "the token endpoint URL",
    "transfer-encoding": "the body",
}
# Parameters of the token request itself (RFC 6749 §4.1.3, §6; RFC 7636 §4.5; RFC 7521 §4.2):
# an extra parameter of the same name would send a second, conflicting value.
RESERVED_TOKEN_PARAMS = frozenset(
    {
        "grant_type",
        "code",
        "refresh_token",
        "redirect_uri",
        "client_id",
        "client_secret",
        "code_verifier",
        "scope",
        "client_assertion",
        "client_assertion_type",
    }
)
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 §5.6.2 token
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB is allowed (RFC 9110 §5.5)


def _text_pairs(value: Any, *, what: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{what} must be an object of names to text values."]
    wrong = [str(name) for name, item in value.items() if not isinstance(item, str)]
    if wrong:
        return [f"{what}: the value of {', '.join(sorted(wrong))} must be text."]
    return []


def token_request_param_errors(params: Any) -> list[str]:
    errors = _text_pairs(params, what="Extra token-request parameters")
    if errors:
        return errors
    for name in params:
        if not name.strip():
            errors.append("Extra token-request parameters need a name.")
        elif name.strip().lower() in RESERVED_TOKEN_PARAMS:
            errors.append(
                f"{name!r} cannot be an extra token-request parameter: tokenadmin sends it "
                "itself on the code exchange or refresh."
            )
    return errors


def token_request_header_errors(headers: Any) -> list[str]:
    """What is wrong with `headers`. Extra headers are configuration, stored and shown in the
    admin as such, not secrets; a message still never quotes a value."""
    errors = _text_pairs(headers, what="Extra token-request headers")
    if errors:
        return errors
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            errors.append(f"{name!r} is not a valid HTTP header name.")
        elif name.lower() in RESERVED_TOKEN_HEADERS:
            errors.append(
                f"{name} cannot be an extra token-request header: tokenadmin sets it from "
                f"{RESERVED_TOKEN_HEADERS[name.lower()]}."
            )
        elif CONTROL_CHARS.search(value):
            errors.append(f"The value of header {name} has a line break or control character.")
        elif not value.isascii():
            # HTTP sends header values as Latin-1 at best; anything else fails every request.
            errors.append(f"The value of header {name} must be ASCII text.")
    return errors


def validate_token_request(*, params: Any, headers: Any, encoding: str | None = None) -> None:
    """Refuse extra token-request parameters, headers or an encoding that cannot be sent as
    asked; the ValidationError names the field at fault. Shared by the model and the presets."""
    errors: dict[str, list[str]] = {}
    if param_errors := token_request_param_errors(params):
        errors["token_request_params"] = param_errors
    if header_errors := token_request_header_errors(headers):
        errors["token_request_headers"] = header_errors
    if encoding is not None and encoding not in BodyEncoding.values:
        choices = " or ".join(BodyEncoding.values)
        errors["token_request_encoding"] = [f"The body encoding must be {choices}."]
    if errors:
        raise ValidationError(errors)


class RefreshExpiry(models.TextChoices):
    """How a provider's refresh tokens die."""

    UNKNOWN = "unknown", "Unknown"
    SLIDING = "sliding", "Sliding (renewed by use)"
    ABSOLUTE = "absolute", "Absolute (fixed deadline from consent)"
    NONE = "none", "Never expires"


class ExpirySource(models.TextChoices):
    """Where an expiry time came from, in the order they are trusted."""

    RESPONSE = "response", "Token response"
    JWT = "jwt", "JWT exp claim"
    INTROSPECTION = "introspection", "Token introspection"
    OVERRIDE = "override", "Connection override"
    POLICY = "policy", "Provider policy"
    ASSUMED = "assumed", "Assumed (default lifetime)"
    UNKNOWN = "unknown", "Unknown"


class Provider(models.Model):
    """An authorization server: its endpoints and how its tokens behave."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    preset = models.CharField(max_length=64, blank=True, help_text="Preset this was made from.")
    issuer = models.URLField(blank=True, help_text="OpenID Connect / RFC 8414 issuer, if any.")
    authorize_url = models.URLField(max_length=500)
    token_url = models.URLField(max_length=500)
    revoke_url = models.URLField(max_length=500, blank=True)
    introspect_url = models.URLField(max_length=500, blank=True)
    userinfo_url = models.URLField(max_length=500, blank=True)
    default_scopes = models.CharField(max_length=1000, blank=True)
    extra_authorize_params = models.JSONField(
        default=dict,
        blank=True,
        help_text='Sent on every authorization request, e.g. {"prompt": "consent"}.',
    )
    token_endpoint_auth_method = models.CharField(
        max_length=32, choices=AuthMethod.choices, default=AuthMethod.CLIENT_SECRET_BASIC
    )
    use_pkce = models.BooleanField(default=True)
    # Token requests as the provider wants them, for the code exchange and every refresh.
    token_request_params = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extra token-request parameters, e.g. {"expiring": "1"}.',
    )
    token_request_headers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extra token-request headers, e.g. {"Accept": "application/json"}.',
    )
    token_request_encoding = models.CharField(
        max_length=8, choices=BodyEncoding.choices, default=BodyEncoding.FORM
    )
    access_token_lifetime = models.DurationField(
        null=True, blank=True, help_text="Used only when a token response has no expires_in."
    )
    refresh_token_lifetime = models.DurationField(null=True, blank=True)
    refresh_token_expiry = models.CharField(
        max_length=16, choices=RefreshExpiry.choices, default=RefreshExpiry.UNKNOWN
    )
    renewal_fraction = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.05), MaxValueValidator(0.95)],
        help_text="Renew a sliding or rotating refresh token once it is this old, as a fraction "
        "of its lifetime. Blank: 0.8 (day 72 of 90).",
    )
    rotates_refresh_tokens = models.BooleanField(
        null=True, blank=True, help_text="Yes, no, or unknown."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # The encoding's choices are checked with the field itself.
        validate_token_request(params=self.token_request_params, headers=self.token_request_headers)
        if error := pkce_error(auth_method=self.token_endpoint_auth_method, use_pkce=self.use_pkce):
            raise ValidationError({"use_pkce": error})
        if misfits := self.connections_misfit_by_auth_method():
            raise ValidationError(
                {
                    "token_endpoint_auth_method": (
                        f"Connections {', '.join(misfits)} would not fit it: a public client "
                        "(none) has no client secret and every other method needs one. Move "
                        "them to another provider first."
                    )
                }
            )

    def connections_misfit_by_auth_method(self) -> list[str]:
        """Slugs of this provider's connections whose client secret (present or not) would not
        fit the client authentication as edited; [] when the edit keeps public or not."""
        if self.pk is None:
            return []
        stored = (
            Provider.objects.filter(pk=self.pk)
            .values_list("token_endpoint_auth_method", flat=True)
            .first()
        )
        public = AuthMethod.NONE
        if stored is None or (stored == public) == (self.token_endpoint_auth_method == public):
            return []
        return [
            connection.slug
            for connection in self.connections.only("slug", "client_secret").order_by("slug")
            if client_secret_error(
                auth_method=self.token_endpoint_auth_method,
                has_secret=bool(connection.client_secret),
            )
        ]
