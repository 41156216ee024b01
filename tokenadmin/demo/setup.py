"""`manage.py demo_setup`: everything the demo needs in its database, idempotent.

- the demo provider's user (`demo` / `demo`, not staff: it can sign in at the demo provider only);
- its OAuth client (DOT Application) with the callback `SITE_URL/oauth/callback/`;
- tokenadmin's Provider for it (endpoints under `SITE_URL/demo-provider/`; access tokens of
  DEMO_ACCESS_SECONDS, an absolute grant of DEMO_GRANT_SECONDS, rotating refresh tokens) and a
  pending connection `demo` with a pipeline that runs every five minutes;
- the alerting fitted to a 15-minute grant: the default `days_until_expiry <= 10` rule would
  fire at once (a 15-minute deadline is "1 day" away), so it is disabled; the configured lead
  times (TOKENADMIN_WARNING_LEAD_TIMES, 10 and 5 minutes in the demo) remain;
- the dashboard's `admin` with a new password, printed: the demo's database is its own, and a
  newcomer starting the demo again should not need a password shown only the first time.

Run again after a SITE_URL change, it moves the endpoints and the callback with it. The client
secret is made anew only when the client or the connection is new (it exists in plain text
nowhere else: DOT keeps a hash, tokenadmin an encrypted copy).
"""

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from oauth2_provider.models import get_application_model

from alerts.defaults import REMINDER_RULE
from alerts.models import AlertRule
from connections.authorize import callback_url
from connections.management.commands.ensure_admin import ADMIN_USERNAME
from connections.models import AuthMethod, Connection, Provider, RefreshExpiry
from connections.services import (
    connection_create,
    connection_update,
    consumer_add,
    provider_create,
    provider_update,
)

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # shown on the demo provider's login page: it guards nothing real
CLIENT_ID = "tokenadmin-demo"
PROVIDER_SLUG = "demo-provider"
CONNECTION_SLUG = "demo"
PIPELINE = "demo pipeline"
PIPELINE_CRON = "*/5 * * * *"
OWNER_EMAIL = "demo-owner@example.com"


@dataclass
class DemoReport:
    lines: list[str] = field(default_factory=list)
    admin_password: str = ""

    def add(self, line: str) -> None:
        self.lines.append(line)


def demo_base_url() -> str:
    return f"{settings.SITE_URL}/demo-provider/"


def ensure_demo() -> DemoReport:
    report = DemoReport()
    with transaction.atomic():
        _ensure_demo_user(report)
        secret = _ensure_client(report)
        provider = _ensure_provider(report)
        _ensure_connection(report, provider, secret)
        _fit_alerting(report)
        report.admin_password = _reset_admin_password()
    return report


def _ensure_demo_user(report: DemoReport) -> None:
    user, created = get_user_model().objects.get_or_create(
        username=DEMO_USERNAME, defaults={"first_name": "Demo", "last_name": "User"}
    )
    if created or not user.check_password(DEMO_PASSWORD) or user.is_staff:
        user.set_password(DEMO_PASSWORD)
        user.is_staff = user.is_superuser = False
        user.save()
        report.add(f"demo provider user {DEMO_USERNAME!r} ready")


def _ensure_client(report: DemoReport) -> str:
    """The demo provider's client for tokenadmin; its new secret when it had to be made."""
    application_model = get_application_model()
    application = application_model.objects.filter(client_id=CLIENT_ID).first()
    if application is None:
        secret = secrets.token_urlsafe(32)
        application_model.objects.create(
            name="tokenadmin (demo)",
            client_id=CLIENT_ID,
            client_secret=secret,  # DOT stores a hash of it
            client_type=application_model.CLIENT_CONFIDENTIAL,
            authorization_grant_type=application_model.GRANT_AUTHORIZATION_CODE,
            redirect_uris=callback_url(),
            skip_authorization=False,  # the newcomer sees the consent page
        )
        report.add(f"demo provider client {CLIENT_ID!r} registered")
        return secret
    if application.redirect_uris != callback_url():
        application_model.objects.filter(pk=application.pk).update(redirect_uris=callback_url())
        report.add(f"demo provider client now redirects to {callback_url()}")
    return ""


def _provider_fields() -> dict:
    base = demo_base_url()
    return {
        "name": "Demo provider (built in)",
        "authorize_url": base + "authorize/",
        "token_url": base + "token/",
        "revoke_url": base + "revoke_token/",
        "userinfo_url": base + "userinfo/",
        "default_scopes": "read",
        "token_endpoint_auth_method": AuthMethod.CLIENT_SECRET_BASIC,
        "use_pkce": True,
        "access_token_lifetime": timedelta(seconds=settings.DEMO_ACCESS_SECONDS),
        "refresh_token_lifetime": timedelta(seconds=settings.DEMO_GRANT_SECONDS),
        "refresh_token_expiry": RefreshExpiry.ABSOLUTE,
        "rotates_refresh_tokens": True,
    }


def _ensure_provider(report: DemoReport) -> Provider:
    wanted = _provider_fields()
    provider = Provider.objects.filter(slug=PROVIDER_SLUG).first()
    if provider is None:
        report.add(f"provider {PROVIDER_SLUG!r} at {demo_base_url()}")
        return provider_create(fields={"slug": PROVIDER_SLUG, **wanted})
    changes = {name: value for name, value in wanted.items() if getattr(provider, name) != value}
    if changes:
        report.add(f"provider {PROVIDER_SLUG!r} updated: {', '.join(sorted(changes))}")
        return provider_update(provider=provider, changes=changes)
    return provider


def _ensure_connection(report: DemoReport, provider: Provider, secret: str) -> None:
    connection = Connection.objects.filter(slug=CONNECTION_SLUG).first()
    if connection is None:
        if not secret:
            # The client exists but its secret is only a hash there: make a new one for both.
            secret = _new_client_secret()
        saved = connection_create(
            name="Demo connection",
            slug=CONNECTION_SLUG,
            provider=provider,
            client_id=CLIENT_ID,
            client_secret=secret,
            scopes="read",
            contact_email=OWNER_EMAIL,
            expected_account=DEMO_USERNAME,
        )
        consumer_add(
            connection=saved.connection,
            label=PIPELINE,
            cron=PIPELINE_CRON,
            lead_minutes=1,
            run_minutes=1,
        )
        report.add(f"connection {CONNECTION_SLUG!r} created (pending: authorize it)")
        return
    if secret:
        # A new client (its database rows were reset): the connection must use its secret.
        connection_update(connection=connection, changes={}, client_secret=secret)
        report.add(f"connection {CONNECTION_SLUG!r} given the new client secret")


def _new_client_secret() -> str:
    secret = secrets.token_urlsafe(32)
    application = get_application_model().objects.get(client_id=CLIENT_ID)
    application.client_secret = secret
    application.save()
    return secret


def _fit_alerting(report: DemoReport) -> None:
    if AlertRule.objects.filter(name=REMINDER_RULE, enabled=True).update(enabled=False):
        report.add(f"rule {REMINDER_RULE!r} disabled: a 15-minute grant is inside it at once")


def _reset_admin_password() -> str:
    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    admin = user_model.objects.filter(username=ADMIN_USERNAME).first()
    if admin is None:
        admin = user_model.objects.create_superuser(username=ADMIN_USERNAME, email="")
    admin.set_password(password)
    admin.save()
    return password
