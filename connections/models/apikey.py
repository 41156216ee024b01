import secrets
from collections.abc import Iterable

from django.db import models

from connections.models.connection import Connection
from tokenadmin.hashing import sha256_hex


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A pipeline's credential for the token API.

    Keys are 32 random bytes, so a single SHA-256 is enough to store them safely; a slow password
    hash would only slow the hot path. The first characters (`prefix`) identify a key in lists.
    """

    PREFIX = "tka_"

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, for humans.")
    key_hash = models.CharField(max_length=64, unique=True)
    connections = models.ManyToManyField(Connection, blank=True, related_name="api_keys")
    all_connections = models.BooleanField(
        default=False, help_text="Grants every connection, including future ones."
    )
    allow_metrics = models.BooleanField(default=False, help_text="May read /metrics.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return sha256_hex(raw_key)

    @classmethod
    def issue(
        cls,
        *,
        name: str,
        connections: Iterable[Connection] = (),
        all_connections: bool = False,
        allow_metrics: bool = False,
    ) -> tuple["ApiKey", str]:
        """Create a key; return (ApiKey, raw key). The raw key is shown once and never stored."""
        raw_key = cls.PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            name=name,
            prefix=raw_key[: len(cls.PREFIX) + 6],
            key_hash=cls.hash_key(raw_key),
            all_connections=all_connections,
            allow_metrics=allow_metrics,
        )
        key.connections.set(connections)
        return key, raw_key

    def allows(self, connection: Connection) -> bool:
        return self.all_connections or self.connections.filter(pk=connection.pk).exists()
