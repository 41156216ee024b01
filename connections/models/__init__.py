from connections.models.apikey import ApiKey, ApiKeyQuerySet
from connections.models.connection import Connection, ConnectionQuerySet
from connections.models.consumer import ConsumerSchedule
from connections.models.provider import (
    AuthMethod,
    BodyEncoding,
    ExpirySource,
    Provider,
    RefreshExpiry,
)
from connections.models.records import (
    AuthorizationRequest,
    FailoverEvent,
    HealthCheck,
    ReauthLink,
    RefreshAttempt,
    StatusChange,
)

__all__ = [
    "ApiKey",
    "ApiKeyQuerySet",
    "AuthMethod",
    "AuthorizationRequest",
    "BodyEncoding",
    "Connection",
    "ConnectionQuerySet",
    "ConsumerSchedule",
    "ExpirySource",
    "FailoverEvent",
    "HealthCheck",
    "Provider",
    "ReauthLink",
    "RefreshAttempt",
    "RefreshExpiry",
    "StatusChange",
]
