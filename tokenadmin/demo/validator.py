"""django-oauth-toolkit's validator with an absolute grant lifetime, said in every response.

DOT rotates refresh tokens and expires each one REFRESH_TOKEN_EXPIRE_SECONDS after its access
token, so with rotation its expiry slides. Many real providers (LinkedIn, Intuit's hard cap)
instead end the grant a fixed time after consent, which is what tokenadmin exists to warn about:
here the grant (every refresh token of one `token_family`) ends DEMO_GRANT_SECONDS after its
first token was issued, and each token response says how long is left in
`refresh_token_expires_in` (the field Microsoft and others use), so tokenadmin knows the
deadline from the provider's own word.
"""

from datetime import datetime, timedelta
from hashlib import sha256

from django.conf import settings
from django.db.models import Min
from django.utils import timezone
from oauth2_provider.models import get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator

RefreshToken = get_refresh_token_model()


def grant_expires_at(refresh_token) -> datetime:
    """When the grant `refresh_token` belongs to ends: its family's first token + the lifetime."""
    started = RefreshToken.objects.filter(token_family=refresh_token.token_family).aggregate(
        first=Min("created")
    )["first"]
    return (started or refresh_token.created) + timedelta(seconds=settings.DEMO_GRANT_SECONDS)


class DemoValidator(OAuth2Validator):
    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs) -> bool:
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        # An ended grant is `invalid_grant` (RFC 6749 §5.2), as at any provider.
        return grant_expires_at(request.refresh_token_instance) > timezone.now()

    def save_bearer_token(self, token, request, *args, **kwargs):
        super().save_bearer_token(token, request, *args, **kwargs)
        value = token.get("refresh_token")
        issued = (
            RefreshToken.objects.filter(
                token_checksum=sha256(value.encode()).hexdigest(), revoked__isnull=True
            ).first()
            if value
            else None
        )
        if issued is not None:
            left = grant_expires_at(issued) - timezone.now()
            token["refresh_token_expires_in"] = max(0, int(left.total_seconds()))
