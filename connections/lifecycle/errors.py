"""Why no access token can be served: one exception per reason, each with a `code` that the
token API and the CLI show."""


class TokenUnavailable(Exception):
    """No valid access token can be served; `code` names why (for APIs and the CLI)."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NeedsReauth(TokenUnavailable):
    code = "needs_reauth"


class NotAuthorized(TokenUnavailable):
    code = "not_authorized"


class ConnectionDisabled(TokenUnavailable):
    code = "disabled"


class ProviderUnavailable(TokenUnavailable):
    code = "provider_unavailable"
