"""System checks: settings combinations that would break the refresh rules fail at start-up."""

import pickle
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.signing import BadSignature
from django.db import DatabaseError
from django_cryptography.utils.crypto import InvalidToken

from connections.oauth import CONNECT_TIMEOUT


@register()
def check_refresh_timing(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    cfg = settings.TOKENADMIN
    errors = []
    # A call may spend the connect timeout and then the read timeout. A lease that ran out
    # mid-call would let a second caller send the same refresh token, which rotating providers
    # punish by revoking the grant.
    longest_call = min(CONNECT_TIMEOUT, cfg["HTTP_TIMEOUT"]) + cfg["HTTP_TIMEOUT"]
    if cfg["LEASE_SECONDS"] <= longest_call:
        errors.append(
            Error(
                f"TOKENADMIN_LEASE_SECONDS ({cfg['LEASE_SECONDS']} s) must exceed the longest "
                f"provider call: connect + TOKENADMIN_HTTP_TIMEOUT = {longest_call:g} s.",
                hint="Raise the lease or lower the HTTP timeout.",
                id="tokenadmin.E001",
            )
        )
    if cfg["WAIT_SECONDS"] <= cfg["LEASE_SECONDS"]:
        errors.append(
            Error(
                "TOKENADMIN_WAIT_SECONDS must exceed TOKENADMIN_LEASE_SECONDS, so a caller "
                "outwaits "
                "a crashed holder's lease instead of failing.",
                id="tokenadmin.E002",
            )
        )
    # A job may start just before the budget runs out and then hold its lease (twice, with the
    # timeout retry) before the task ends.
    if cfg["SWEEP_BUDGET_SECONDS"] + 2 * cfg["LEASE_SECONDS"] >= settings.Q_CLUSTER["timeout"]:
        errors.append(
            Error(
                "TOKENADMIN_SWEEP_BUDGET_SECONDS plus twice TOKENADMIN_LEASE_SECONDS must stay "
                "below Q_CLUSTER's task timeout, or the cluster kills a sweep mid-refresh.",
                id="tokenadmin.E003",
            )
        )
    if cfg["SWEEP_INTERVAL_SECONDS"] % 60:
        errors.append(
            Error(
                "TOKENADMIN_SWEEP_INTERVAL_SECONDS must be a whole number of minutes: django-q2 "
                "schedules run at most once a minute.",
                id="tokenadmin.E004",
            )
        )
    return errors


@register(deploy=True)
def check_site_url(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if settings.SITE_URL.startswith("http://"):
        return [
            Warning(
                "SITE_URL is not https: authorization codes and reauthorization links would "
                "travel in clear text.",
                id="tokenadmin.W001",
            )
        ]
    return []


@register(Tags.database)
def check_secrets_decrypt(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Error]:
    """Stored tokens must decrypt with the configured keys.

    Runs with `migrate` (so `make run` stops before serving) and `check --database default`.
    django-cryptography derives its cipher key from ENCRYPTION_KEY but signs with SECRET_KEY,
    so changing either without re-encrypting makes every stored secret unreadable.
    """
    if not databases:
        return []
    from connections.models import Connection

    try:
        Connection.objects.only("client_secret", "access_token", "refresh_token").first()
    except (InvalidToken, BadSignature, pickle.UnpicklingError):
        return [
            Error(
                "Stored tokens and client secrets cannot be decrypted with the configured keys.",
                hint="Set ENCRYPTION_KEY and SECRET_KEY back to the values the data was "
                "encrypted with.",
                id="tokenadmin.E005",
            )
        ]
    except DatabaseError:
        return []  # not migrated yet: nothing stored to check
    return []
