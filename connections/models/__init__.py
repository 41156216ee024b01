from connections.models.apikey import ApiKey, ApiKeyQuerySet
from connections.models.connection import Connection, ConnectionQuerySet
from connections.models.consumer import ConsumerSchedule
from connections.models.provider import AuthMethod, ExpirySource, Provider, RefreshExpiry
from connections.models.records import (
    AuthorizationRequest,
    HealthCheck,
    RefreshAttempt,
    StatusChange,
)

__all__ = [
    "ApiKey",
    "ApiKeyQuerySet",
    "AuthMethod",
    "AuthorizationRequest",
    "Connection",
    "ConnectionQuerySet",
    "ConsumerSchedule",
    "ExpirySource",
    "HealthCheck",
    "Provider",
    "RefreshAttempt",
    "RefreshExpiry",
    "StatusChange",
]
