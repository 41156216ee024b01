from django.db import models
from django.utils import timezone


class ReauthLink(models.Model):
    """A signed, single-use link that sends a person straight to a provider's consent page.

    Only a hash of the link's nonce is stored: a database reader cannot rebuild the URL.
    """

    connection = models.ForeignKey(
        "connections.Connection", on_delete=models.CASCADE, related_name="reauth_links"
    )
    nonce_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)
    created_for = models.CharField(max_length=200, blank=True, help_text="Why it was made.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reauthorization link for {self.connection} ({self.created_at:%Y-%m-%d})"

    def is_usable(self, *, now=None) -> bool:
        now = now or timezone.now()
        return self.consumed_at is None and self.expires_at > now
