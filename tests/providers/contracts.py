"""What each provider's token endpoint documents, written down independently of presets.json.

One `Contract` per preset, taken from the provider reference (../shared/reference/providers.md and
providers.json, whose per-provider sources are cited on each entry) and, where the reference is
silent on a wire detail, from the provider's own documentation as cited. `presets.json` is never
read here: the contract tests make a connection from the preset as a user would and run it
against a local fake that enforces this table (`contract_server.py`), so a preset that disagrees
with its provider fails.

Conventions:
- `params` are placeholder values a user would type; `authorize_url` and `token_url` are the
  documented endpoints with those values filled in.
- `auth`: how the client authenticates at the token endpoint: "basic" (RFC 6749 §2.3.1 header),
  "post" (client_id and client_secret in the body), "none" (a public client: client_id only).
- `pkce`: True: S256 challenge on the consent URL and the verifier on the code exchange required;
  False: the provider takes none (the reference says "no"); None: optional.
- `refresh_needs`: what must be asked for before the provider issues a refresh token at all:
  ("scope", names) any of the scopes; ("authorize", key, value) a consent-URL parameter;
  ("token", key, value) a code-exchange parameter. Without it the grant has no refresh token,
  exactly as at the provider (no refusal, just no refresh token).
- `rotation`: what a refresh returns: "none" (no refresh token: keep the old one), "echo" (the
  same value again), "revoke" (a new one; the old one dies after `grace` seconds, and sending it
  later burns the grant), "keep_old" (a new one; the old one stays valid: Microsoft), "daily"
  (the value changes once it is a day old: Intuit).
- `rotates`: what the provider must be known as once the refreshes are done (True, False, None
  for "configurable or undocumented").
- `refresh_field`: the token-response field giving the refresh token's remaining lifetime, sent
  with every refresh token; `kind` and `refresh_days` the refresh token's documented expiry.
- `dead_grant`: the provider's answer to a refresh with a revoked or expired grant.
"""

from dataclasses import dataclass, field
from typing import Any

CLIENT_ID = "contract-client-id"
CLIENT_SECRET = "contract-client-secret-7c1e"
DAY = 86400

INVALID_GRANT = (400, {"error": "invalid_grant"})


@dataclass(frozen=True)
class Contract:
    slug: str
    authorize_url: str
    token_url: str
    auth: frozenset[str]
    access_expires_in: int | None  # None: the response states no lifetime
    access_lifetime: int  # what tokenadmin must store
    access_source: str  # ExpirySource value
    rotation: str
    rotates: bool | None
    kind: str  # RefreshExpiry value
    refresh_days: int | None
    dead_grant: tuple[int, dict[str, Any]]
    sources: tuple[str, ...]
    params: dict[str, str] = field(default_factory=dict)
    encoding: str = "form"
    pkce: bool | None = None
    authorize_params: dict[str, str] = field(default_factory=dict)
    scope_needs: tuple[str, ...] = ()  # scopes the consent URL must ask for
    refresh_needs: tuple[tuple, ...] = ()
    token_headers: dict[str, str] = field(default_factory=dict)  # value must appear in header
    grace: int = 0
    refresh_field: str = ""
    token_type: str = "Bearer"
    extra: dict[str, Any] = field(default_factory=dict)  # documented extra response fields
    json_only_with_accept: bool = False  # GitHub answers form-encoded unless asked for JSON
    hard_cap_header: str = ""  # Intuit: ask for the hard cap with this header
    hard_cap_days: int | None = None
    userinfo: tuple[str, dict[str, Any]] | None = None  # (path, body) of the identity endpoint
    refresh_gaps: tuple[int, int] | None = None  # default: the access lifetime, twice

    @property
    def gaps(self) -> tuple[int, int]:
        """Time between consent and the first refresh, and between the two refreshes."""
        return self.refresh_gaps or (self.access_lifetime, self.access_lifetime)


GOOGLE_SOURCES = (
    "https://developers.google.com/identity/protocols/oauth2 (refresh token expiration)",
    "https://developers.google.com/identity/protocols/oauth2/web-server (access_type=offline, "
    "refresh responses carry no refresh_token)",
)
GOOGLE = {
    "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
    "token_url": "https://oauth2.googleapis.com/token",
    "auth": frozenset({"post"}),
    "pkce": True,
    "authorize_params": {"access_type": "offline", "prompt": "consent"},
    "refresh_needs": (("authorize", "access_type", "offline"),),
    "access_expires_in": 3599,
    "access_lifetime": 3599,
    "access_source": "response",
    "rotation": "none",
    "rotates": False,
    "kind": "sliding",
    "refresh_days": 183,
    "dead_grant": (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    ),
    "sources": GOOGLE_SOURCES,
}

CONTRACTS: dict[str, Contract] = {
    c.slug: c
    for c in [
        Contract(slug="google", **GOOGLE),
        Contract(
            slug="google-analytics",
            scope_needs=("https://www.googleapis.com/auth/analytics.readonly",),
            **GOOGLE,
        ),
        Contract(
            slug="microsoft",
            params={"tenant": "contoso"},
            authorize_url="https://login.microsoftonline.com/contoso/oauth2/v2.0/authorize",
            token_url="https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
            auth=frozenset({"post"}),
            pkce=True,
            authorize_params={"response_mode": "query"},
            refresh_needs=(("scope", ("offline_access",)),),
            # Randomised between 60 and 90 minutes: only expires_in says which.
            access_expires_in=4487,
            access_lifetime=4487,
            access_source="response",
            extra={"ext_expires_in": 4487},
            rotation="keep_old",  # a new refresh token each time; the old one is not revoked
            rotates=True,
            kind="sliding",
            refresh_days=90,
            dead_grant=(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "AADSTS70008: The provided authorization code or "
                    "refresh token has expired due to inactivity.",
                    "error_codes": [70008],
                },
            ),
            sources=(
                "https://learn.microsoft.com/en-nz/entra/identity-platform/refresh-tokens",
                "https://learn.microsoft.com/en-us/answers/questions/1158831 (old RT not revoked)",
            ),
        ),
        Contract(
            slug="salesforce",
            params={"host": "login.salesforce.com"},
            authorize_url="https://login.salesforce.com/services/oauth2/authorize",
            token_url="https://login.salesforce.com/services/oauth2/token",
            auth=frozenset({"post"}),
            pkce=True,
            authorize_params={"prompt": "consent"},
            refresh_needs=(("scope", ("refresh_token", "offline_access")),),
            # No expires_in (only issued_at); the session timeout is 2 h by default (issue 9).
            access_expires_in=None,
            access_lifetime=7200,
            access_source="policy",
            extra={
                "instance_url": "https://acme.my.salesforce.com",
                "id": "https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6A",
                "issued_at": "1788253200000",
                "signature": "0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ=",
            },
            rotation="none",  # rotation is an optional org setting, off by default
            rotates=None,
            kind="sliding",
            refresh_days=30,
            dead_grant=(
                400,
                {"error": "invalid_grant", "error_description": "expired access/refresh token"},
            ),
            sources=(
                "https://nango.dev/blog/salesforce-get-access-token-expires-at (no expires_in)",
                "https://help.salesforce.com/s/articleView?id=xcloud.connected_app_limit_idle_ttl.htm",
            ),
        ),
        Contract(
            slug="hubspot",
            authorize_url="https://app.hubspot.com/oauth/authorize",
            token_url="https://api.hubapi.com/oauth/v3/token",
            auth=frozenset({"post"}),  # v3 takes every parameter in the form body
            pkce=True,
            access_expires_in=1800,
            access_lifetime=1800,
            access_source="response",
            token_type="bearer",
            rotation="echo",
            rotates=None,
            kind="none",
            refresh_days=None,
            # v3 answers standard OAuth error codes ("standardized error responses").
            dead_grant=(
                400,
                {"error": "invalid_grant", "error_description": "missing or unknown refresh token"},
            ),
            sources=(
                "https://developers.hubspot.com/docs/api-reference/auth-oauth-v3/guide",
                "https://developers.hubspot.com/changelog/new-oauth-v3-api-endpoints-and-"
                "standardized-error-responses",
            ),
        ),
        Contract(
            slug="xero",
            authorize_url="https://login.xero.com/identity/connect/authorize",
            token_url="https://identity.xero.com/connect/token",
            auth=frozenset({"basic"}),
            pkce=True,
            refresh_needs=(("scope", ("offline_access",)),),
            access_expires_in=1800,
            access_lifetime=1800,
            access_source="response",
            rotation="revoke",
            grace=1800,  # the previous refresh token can be retried for 30 minutes
            rotates=True,
            kind="sliding",
            refresh_days=60,
            dead_grant=INVALID_GRANT,
            sources=("https://developer.xero.com/faq/oauth2",),
        ),
        Contract(
            slug="intuit-quickbooks",
            authorize_url="https://appcenter.intuit.com/connect/oauth2",
            token_url="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
            auth=frozenset({"basic"}),
            token_headers={"Accept": "application/json"},
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            token_type="bearer",
            rotation="daily",  # the value changes about every 24 h: always store the latest
            rotates=True,
            kind="sliding",
            refresh_days=100,
            refresh_field="x_refresh_token_expires_in",
            # Opt-in: the 5-year hard cap is only said when asked for; without it nobody can
            # warn ahead of the hard deadline.
            hard_cap_header="x-include-refresh-token-hard-expires-in",
            hard_cap_days=5 * 365,
            refresh_gaps=(3600, 25 * 3600),
            dead_grant=INVALID_GRANT,
            sources=(
                "https://developer.intuit.com/app/developer/qbo/docs/develop/"
                "authentication-and-authorization/oauth-2.0 (Accept: application/json)",
                "https://blogs.intuit.com/2024/06/03/oauth-token-management-done-the-right-way/",
                "https://blogs.a.intuit.com/2025/11/12/important-changes-to-refresh-token-policy",
                "https://github.com/intuit/QuickBooks-V3-Java-SDK/releases/tag/v6.5.4",
            ),
        ),
        Contract(
            slug="zoho",
            params={"dc": "eu"},
            authorize_url="https://accounts.zoho.eu/oauth/v2/auth",
            token_url="https://accounts.zoho.eu/oauth/v2/token",
            auth=frozenset({"post"}),
            authorize_params={"access_type": "offline", "prompt": "consent"},
            refresh_needs=(("authorize", "access_type", "offline"),),
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            extra={"api_domain": "https://www.zohoapis.eu"},
            rotation="none",
            rotates=False,
            kind="none",
            refresh_days=None,
            # Zoho answers errors with HTTP 200; a revoked refresh token is `invalid_code`.
            dead_grant=(200, {"error": "invalid_code"}),
            sources=(
                "https://zoho.com/crm/developer/docs/api/v2/token-validity.html",
                "https://www.zoho.com/contracts/api/getting-started/refreshing-access-tokens.html",
                "https://help.zoho.com/portal/en/community/topic/"
                "oauth-grant-type-refresh-token-error-invalid-code",
            ),
        ),
        Contract(
            slug="dropbox",
            authorize_url="https://www.dropbox.com/oauth2/authorize",
            token_url="https://api.dropboxapi.com/oauth2/token",
            auth=frozenset({"basic", "post"}),
            pkce=True,
            authorize_params={"token_access_type": "offline"},
            refresh_needs=(("authorize", "token_access_type", "offline"),),
            access_expires_in=14400,
            access_lifetime=14400,
            access_source="response",
            token_type="bearer",
            extra={"account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc", "uid": "12345"},
            rotation="none",
            rotates=False,
            kind="none",
            refresh_days=None,
            dead_grant=(
                400,
                {"error": "invalid_grant", "error_description": "refresh token is invalid"},
            ),
            sources=("https://dropbox.tech/developers/using-oauth-2-0-with-offline-access",),
        ),
        Contract(
            slug="box",
            authorize_url="https://account.box.com/api/oauth2/authorize",
            token_url="https://api.box.com/oauth2/token",
            auth=frozenset({"post"}),
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            token_type="bearer",
            extra={"restricted_to": []},
            rotation="revoke",  # usable exactly once
            rotates=True,
            kind="sliding",
            refresh_days=60,
            dead_grant=(
                400,
                {"error": "invalid_grant", "error_description": "Invalid refresh token"},
            ),
            sources=("https://developer.box.com/guides/authentication/tokens/refresh",),
        ),
        Contract(
            slug="slack",
            authorize_url="https://slack.com/oauth/v2/authorize",
            token_url="https://slack.com/api/oauth.v2.access",
            auth=frozenset({"post"}),
            pkce=False,
            access_expires_in=43200,
            access_lifetime=43200,
            access_source="response",
            # The bot token is at the top level; the installing user's id under authed_user.
            token_type="bot",
            extra={
                "ok": True,
                "app_id": "A0KRD7HC3",
                "bot_user_id": "U0KRQLJ9H",
                "team": {"name": "Slack Softball Team", "id": "T9TK3CUKW"},
                "enterprise": None,
                "is_enterprise_install": False,
                "authed_user": {"id": "U1234"},
            },
            rotation="revoke",
            rotates=True,
            kind="unknown",
            refresh_days=None,
            # Web API methods answer HTTP 200 with ok:false.
            dead_grant=(200, {"ok": False, "error": "invalid_refresh_token"}),
            sources=(
                "https://docs.slack.dev/authentication/using-token-rotation",
                "https://api.slack.com/methods/oauth.v2.access",
            ),
        ),
        Contract(
            slug="zoom",
            authorize_url="https://zoom.us/oauth/authorize",
            token_url="https://zoom.us/oauth/token",
            auth=frozenset({"basic"}),
            pkce=True,
            access_expires_in=3599,
            access_lifetime=3599,
            access_source="response",
            token_type="bearer",
            rotation="revoke",
            rotates=True,
            kind="unknown",
            refresh_days=None,
            # 'Invalid Token' with a reason field (reported with invalid_grant and, on the
            # developer forum, invalid_request).
            dead_grant=(400, {"reason": "Invalid Token!", "error": "invalid_grant"}),
            sources=(
                "https://devsupport.zoom.us/hc/en-us/articles/360060332931",
                "https://developers.zoom.us/docs/integrations/oauth-error-messages/",
            ),
        ),
        Contract(
            slug="atlassian",
            authorize_url="https://auth.atlassian.com/authorize",
            token_url="https://auth.atlassian.com/oauth/token",
            auth=frozenset({"post"}),
            encoding="json",
            authorize_params={"audience": "api.atlassian.com", "prompt": "consent"},
            refresh_needs=(("scope", ("offline_access",)),),
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            rotation="revoke",
            grace=600,  # the previous refresh token keeps working for 10 minutes
            rotates=True,
            kind="sliding",
            refresh_days=90,
            dead_grant=(
                403,
                {"error": "unauthorized_client", "error_description": "refresh_token is invalid"},
            ),
            sources=(
                "https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/",
                "https://community.developer.atlassian.com/t/"
                "the-old-access-token-will-be-revoked-during-the-refresh-token-exchange/83103",
            ),
        ),
        Contract(
            slug="github-app",
            authorize_url="https://github.com/login/oauth/authorize",
            token_url="https://github.com/login/oauth/access_token",
            auth=frozenset({"post"}),
            pkce=True,
            json_only_with_accept=True,
            access_expires_in=28800,
            access_lifetime=28800,
            access_source="response",
            token_type="bearer",
            extra={"scope": ""},
            rotation="revoke",
            rotates=True,
            kind="sliding",
            refresh_days=184,
            refresh_field="refresh_token_expires_in",
            userinfo=("/user", {"id": 583231, "login": "octocat"}),
            # GitHub's token endpoint answers errors with HTTP 200.
            dead_grant=(
                200,
                {
                    "error": "bad_refresh_token",
                    "error_description": "The refresh token passed is incorrect or expired.",
                    "error_uri": "https://docs.github.com/apps/managing-oauth-apps/"
                    "troubleshooting-oauth-app-access-token-request-errors",
                },
            ),
            sources=(
                "https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-"
                "github-app/refreshing-user-access-tokens",
                "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-"
                "access-token-request-errors (errors as 200 bodies)",
                "https://github.com/orgs/community/discussions/24745 (bad_refresh_token)",
            ),
        ),
        Contract(
            slug="shopify",
            params={"shop": "acme"},
            authorize_url="https://acme.myshopify.com/admin/oauth/authorize",
            token_url="https://acme.myshopify.com/admin/oauth/access_token",
            auth=frozenset({"post"}),
            # Without expiring=1: a legacy non-expiring offline token and no refresh token.
            refresh_needs=(("token", "expiring", "1"),),
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            rotation="revoke",
            rotates=True,
            kind="sliding",
            refresh_days=90,
            refresh_field="refresh_token_expires_in",  # [secondary] in the reference
            dead_grant=INVALID_GRANT,
            sources=(
                "https://shopify.dev/docs/apps/build/authentication-authorization/"
                "access-tokens/offline-access-tokens",
                "https://shopify.dev/changelog/offline-access-tokens-now-support-expiry-and-refresh",
            ),
        ),
        Contract(
            slug="linkedin",
            authorize_url="https://www.linkedin.com/oauth/v2/authorization",
            token_url="https://www.linkedin.com/oauth/v2/accessToken",
            auth=frozenset({"post"}),
            pkce=False,
            access_expires_in=5184000,
            access_lifetime=5184000,
            access_source="response",
            rotation="echo",
            rotates=None,
            kind="absolute",  # 365 days from the first consent; refreshing does not extend it
            refresh_days=365,
            refresh_field="refresh_token_expires_in",
            dead_grant=INVALID_GRANT,
            sources=(
                "https://learn.microsoft.com/en-us/linkedin/shared/authentication/"
                "programmatic-refresh-tokens",
            ),
        ),
        Contract(
            slug="spotify",
            authorize_url="https://accounts.spotify.com/authorize",
            token_url="https://accounts.spotify.com/api/token",
            auth=frozenset({"basic"}),
            pkce=True,
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            rotation="none",
            rotates=None,
            kind="none",
            refresh_days=None,
            userinfo=("/v1/me", {"id": "smedjan", "email": "smedjan@example.com"}),
            dead_grant=(
                400,
                {"error": "invalid_grant", "error_description": "Invalid refresh token"},
            ),
            sources=("https://github.com/spotify/web-api/issues/374",),
        ),
        Contract(
            slug="okta",
            params={"okta_domain": "acme.okta.com"},
            authorize_url="https://acme.okta.com/oauth2/v1/authorize",
            token_url="https://acme.okta.com/oauth2/v1/token",
            auth=frozenset({"basic"}),
            pkce=True,
            refresh_needs=(("scope", ("offline_access",)),),
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            rotation="echo",  # rotation_type STATIC (ROTATE is a per-app option)
            rotates=None,
            kind="absolute",
            refresh_days=90,
            dead_grant=(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The refresh token is invalid or expired.",
                },
            ),
            sources=("https://support.okta.com/help/s/article/refresh-token-expiration-behavior",),
        ),
        Contract(
            slug="auth0",
            params={"tenant": "acme", "api_identifier": "https://api.acme.example/"},
            authorize_url="https://acme.auth0.com/authorize",
            token_url="https://acme.auth0.com/oauth/token",
            auth=frozenset({"post"}),
            pkce=True,
            authorize_params={"audience": "https://api.acme.example/"},
            refresh_needs=(("scope", ("offline_access",)),),
            access_expires_in=86400,
            access_lifetime=86400,
            access_source="response",
            rotation="none",  # rotation is off unless the application turns it on
            rotates=None,
            kind="unknown",
            refresh_days=None,
            dead_grant=(
                403,
                {
                    "error": "invalid_grant",
                    "error_description": "Unknown or invalid refresh token.",
                },
            ),
            sources=(
                "https://auth0.com/docs/secure/tokens/refresh-tokens/configure-refresh-token-rotation",
            ),
        ),
        Contract(
            slug="pipedrive",
            authorize_url="https://oauth.pipedrive.com/oauth/authorize",
            token_url="https://oauth.pipedrive.com/oauth/token",
            auth=frozenset({"basic"}),  # Basic auth is required on the token endpoint
            pkce=False,
            access_expires_in=3599,
            access_lifetime=3599,
            access_source="response",
            extra={"scope": "base", "api_domain": "https://acme.pipedrive.com"},
            rotation="echo",
            rotates=None,
            kind="sliding",
            refresh_days=60,
            dead_grant=INVALID_GRANT,
            sources=("https://pipedrive.readme.io/docs/marketplace-oauth-authorization",),
        ),
        Contract(
            slug="asana",
            authorize_url="https://app.asana.com/-/oauth_authorize",
            token_url="https://app.asana.com/-/oauth_token",
            auth=frozenset({"post"}),
            pkce=True,
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            token_type="bearer",
            extra={"data": {"gid": "4673218951", "name": "Greg Sanchez"}},
            rotation="none",
            rotates=False,
            kind="none",
            refresh_days=None,
            dead_grant=INVALID_GRANT,
            sources=("https://developers.asana.com/docs/oauth",),
        ),
        Contract(
            slug="notion",
            authorize_url="https://api.notion.com/v1/oauth/authorize",
            token_url="https://api.notion.com/v1/oauth/token",
            auth=frozenset({"basic"}),
            encoding="json",
            authorize_params={"owner": "user"},
            # No expires_in documented: the default lifetime is assumed, and said to be.
            access_expires_in=None,
            access_lifetime=3600,
            access_source="assumed",
            token_type="bearer",
            extra={
                "bot_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
                "workspace_id": "3c90c3cc-0d44-4b50-8888-8dd25736052b",
                "workspace_name": "Acme",
                "workspace_icon": None,
                "owner": {"type": "user", "user": {"object": "user", "id": "u-1"}},
                "duplicated_template_id": None,
            },
            rotation="revoke",
            rotates=True,
            kind="unknown",
            refresh_days=None,
            dead_grant=(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
            ),
            sources=(
                "https://developers.notion.com/reference/create-a-token",
                "https://developers.notion.com/reference/refresh-a-token",
                "https://nango.dev/blog/notion-oauth-refresh-token-invalid-grant",
            ),
        ),
        Contract(
            slug="adobe-ims",
            authorize_url="https://ims-na1.adobelogin.com/ims/authorize/v2",
            token_url="https://ims-na1.adobelogin.com/ims/token/v3",
            auth=frozenset({"post"}),
            pkce=True,
            refresh_needs=(("scope", ("offline_access",)),),
            access_expires_in=86399,
            access_lifetime=86399,
            access_source="response",
            token_type="bearer",
            rotation="revoke",  # refresh tokens are revoked once used
            rotates=True,
            kind="unknown",
            refresh_days=14,  # [secondary, possibly outdated]; how it dies is unknown
            dead_grant=INVALID_GRANT,
            sources=(
                "https://docs.gitguardian.com/secrets-detection/secrets-detection-engine/"
                "detectors/specifics/adobe_refresh_token",
            ),
        ),
        Contract(
            slug="snowflake",
            params={"account": "acme"},
            authorize_url="https://acme.snowflakecomputing.com/oauth/authorize",
            token_url="https://acme.snowflakecomputing.com/oauth/token-request",
            auth=frozenset({"basic"}),
            access_expires_in=600,
            access_lifetime=600,
            access_source="response",
            extra={"username": "ALICE"},
            rotation="none",  # single-use refresh tokens are an integration option
            rotates=None,
            kind="absolute",
            refresh_days=90,
            refresh_field="refresh_token_expires_in",  # [unverified] in the reference
            dead_grant=INVALID_GRANT,
            sources=(
                "https://docs.snowflake.com/sql-reference/sql/"
                "create-security-integration-oauth-snowflake",
            ),
        ),
        Contract(
            slug="looker",
            params={"instance": "acme.looker.com", "api_host": "acme.looker.com:19999"},
            authorize_url="https://acme.looker.com/auth",
            token_url="https://acme.looker.com:19999/api/token",
            auth=frozenset({"none"}),  # a public client: client_id and PKCE, no secret
            encoding="json",
            pkce=True,
            authorize_params={"code_challenge_method": "S256"},
            access_expires_in=3600,
            access_lifetime=3600,
            access_source="response",
            rotation="none",
            rotates=None,
            kind="unknown",
            refresh_days=None,
            dead_grant=INVALID_GRANT,
            sources=("https://cloud.google.com/looker/docs/api-cors",),
        ),
    ]
}
