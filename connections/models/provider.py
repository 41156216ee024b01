"""Providers: endpoints and how their tokens behave."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class AuthMethod(models.TextChoices):
    CLIENT_SECRET_BASIC = "client_secret_basic", "HTTP Basic (client_secret_basic)"
    CLIENT_SECRET_POST = "client_secret_post", "Form body (client_secret_post)"


class BodyEncoding(models.TextChoices):
    FORM = "form", "Form (application/x-www-form-urlencoded)"
    JSON = "json", "JSON (application/json)"


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
