from datetime import timedelta

import factory
from django.utils import timezone

from connections.models import Connection, Provider
from tests.authserver.harness import AuthServer


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    slug = factory.Sequence(lambda n: f"provider-{n}")
    name = factory.Sequence(lambda n: f"Provider {n}")
    authorize_url = "https://auth.example.com/authorize"
    token_url = "https://auth.example.com/token"
    default_scopes = "openid offline_access"


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    name = factory.Sequence(lambda n: f"Connection {n}")
    slug = factory.Sequence(lambda n: f"connection-{n}")
    provider = factory.SubFactory(ProviderFactory)
    client_id = factory.Sequence(lambda n: f"client-{n}")
    client_secret = "client-secret-value"

    class Params:
        authorized = factory.Trait(
            status=Connection.Status.ACTIVE,
            access_token=factory.Sequence(lambda n: f"access-token-{n}"),
            refresh_token=factory.Sequence(lambda n: f"refresh-token-{n}"),
            token_type="Bearer",
            access_expires_at=factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1)),
            authorized_at=factory.LazyFunction(timezone.now),
            refresh_issued_at=factory.LazyFunction(timezone.now),
        )


def provider_for(server: AuthServer, slug: str = "testauth", name: str = "") -> Provider:
    """A Provider for the test authorization server (django-oauth-toolkit) `server`."""
    return Provider.objects.create(
        slug=slug,
        name=name or f"Test authorization server ({slug})",
        issuer=server.issuer,
        authorize_url=server.authorize_url,
        token_url=server.token_url,
        userinfo_url=server.userinfo_url,
        revoke_url=server.revoke_url,
        introspect_url=server.introspect_url,
        default_scopes="openid read offline_access",
        extra_authorize_params={"prompt": "consent"},
    )


class ChannelFactory(factory.django.DjangoModelFactory):
    """An email channel by default; `webhook=True` or `slack=True` for the others (give `url`)."""

    class Meta:
        model = "alerts.Channel"

    name = factory.Sequence(lambda n: f"Channel {n}")
    kind = "email"
    email_addresses = factory.Sequence(lambda n: f"ops{n}@example.com")

    class Params:
        webhook = factory.Trait(
            kind="webhook", email_addresses="", secret="webhook-signing-secret-0123456789"
        )
        slack = factory.Trait(kind="slack", email_addresses="")


class AlertRuleFactory(factory.django.DjangoModelFactory):
    """A rule for `event` (needs_reauth by default) over all connections; pass `channels=[…]`."""

    class Meta:
        model = "alerts.AlertRule"
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Rule {n}")
    event = "oauth.connection.needs_reauth"

    @factory.post_generation
    def channels(self, create: bool, extracted, **kwargs) -> None:
        if create and extracted:
            self.channels.set(extracted)

    @factory.post_generation
    def connections(self, create: bool, extracted, **kwargs) -> None:
        if create and extracted:
            self.all_connections = False
            self.save(update_fields=["all_connections"])
            self.connections.set(extracted)
