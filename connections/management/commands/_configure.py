"""The options of `connection create` and `connection consumers`, and how they become one
service call. The services name the value they refuse (`ServiceError.field`); here that value is
shown as the option that carried it."""

import argparse
import os
import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser

from connections.models import AuthMethod, BodyEncoding, RefreshExpiry
from connections.services import ServiceError
from tokenadmin.durations import parse_duration

SECRET_ENV = "TOKENADMIN_CLIENT_SECRET"

# The service's name for each value → the option a person typed it into.
CREATE_OPTIONS = {
    "name": "NAME",
    "slug": "--slug",
    "client_id": "--client-id",
    "client_secret": "--client-secret",
    "preset": "--preset",
    "preset_params": "--preset-param",
    "issuer": "--issuer",
    "authorize_url": "--authorize-url",
    "token_url": "--token-url",
    "revoke_url": "--revoke-url",
    "userinfo_url": "--userinfo-url",
    "auth_method": "--auth-method",
    "token_request_params": "--token-param",
    "token_request_headers": "--token-header",
    "token_request_encoding": "--token-encoding",
    "scopes": "--scope",
    "refresh_lifetime_override": "--refresh-lifetime",
    "refresh_expiry_override": "--refresh-expiry",
    "refresh_threshold": "--threshold",
    "backup": "--backup",
    "contact_email": "--contact",
    "expected_account": "--expect-account",
}
CONSUMER_OPTIONS = {
    "cron": "--cron",
    "timezone": "--tz",
    "lead_minutes": "--lead",
    "run_minutes": "--run",
}


def parse_lifetime(value: str) -> timedelta:
    """`90d`, `12h`, `30m`, `3600s`, or a bare number of days."""
    try:
        return parse_duration(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a lifetime; use e.g. 90d, 12h, 30m, 3600s or 90 (days)"
        ) from None


def parse_param(value: str) -> tuple[str, str]:
    name, sep, param = value.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=VALUE")
    return name.strip(), param.strip()


def non_negative_int(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 0")
    return int(value)


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return int(value)


def refusal(exc: ServiceError, options: dict[str, str]) -> CommandError:
    """The service's message, led by the option that carried the refused value."""
    option = options.get(exc.field or "")
    return CommandError(f"{option}: {exc}" if option else str(exc))


def add_create_arguments(create: CommandParser, exit_codes_help: str) -> None:
    create.description = (
        "Create a pending connection and print the link that authorizes it.\n\n"
        "The client secret comes from --client-secret, --client-secret-file PATH ('-' for "
        f"stdin) or the environment variable {SECRET_ENV}; the last two keep it out of "
        "shell history and process lists. A public client (client authentication none, as "
        "the looker preset) has no secret: give none of them.\n\n" + exit_codes_help
    )
    create.add_argument("name", help="Display name, e.g. 'Analytics export'.")
    create.add_argument("--slug", help="URL-safe id (default: slugified NAME).")
    create.add_argument("--client-id", required=True)
    secret = create.add_mutually_exclusive_group()
    secret.add_argument("--client-secret", help=f"Prefer --client-secret-file or ${SECRET_ENV}.")
    secret.add_argument("--client-secret-file", metavar="PATH")

    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", metavar="SLUG", help="See `connection presets`.")
    source.add_argument("--issuer", metavar="URL", help="Discover endpoints from the issuer.")
    source.add_argument("--authorize-url", metavar="URL")
    create.add_argument(
        "--preset-param",
        type=parse_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Fill a preset placeholder, e.g. tenant=contoso (repeatable).",
    )
    create.add_argument("--token-url", metavar="URL", help="With --authorize-url.")
    create.add_argument("--revoke-url", metavar="URL", help="With --authorize-url.")
    create.add_argument("--userinfo-url", metavar="URL", help="With --authorize-url.")
    create.add_argument(
        "--auth-method",
        choices=AuthMethod.values,
        help="Client authentication at the token endpoint, with --authorize-url "
        "(default: client_secret_basic, which RFC 6749 §2.3.1 requires servers to support; "
        "none: a public client, no secret, PKCE).",
    )
    create.add_argument(
        "--token-param",
        type=parse_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Extra parameter on the code exchange and every refresh, with --authorize-url, "
        "e.g. expiring=1 (repeatable).",
    )
    create.add_argument(
        "--token-header",
        type=parse_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Extra header on the code exchange and every refresh, with --authorize-url, "
        "e.g. Accept=application/json (repeatable; not Authorization or Content-Type).",
    )
    create.add_argument(
        "--token-encoding",
        choices=BodyEncoding.values,
        help="Token request body, with --authorize-url: form (default, RFC 6749) or json.",
    )

    create.add_argument(
        "--scope",
        action="append",
        default=[],
        help="Scopes to request (space-separated, repeatable); default: the provider's.",
    )
    create.add_argument(
        "--refresh-lifetime",
        type=parse_lifetime,
        metavar="DURATION",
        help="Refresh-token lifetime: 90d, 12h, 30m, 3600s or 90 (days).",
    )
    create.add_argument(
        "--refresh-expiry",
        choices=[RefreshExpiry.ABSOLUTE, RefreshExpiry.SLIDING, RefreshExpiry.NONE],
        help="How refresh tokens die, if the provider's default is wrong for this client.",
    )
    create.add_argument(
        "--threshold",
        type=non_negative_int,
        metavar="SECONDS",
        help="Refresh when the access token expires within this many seconds (default 300).",
    )
    create.add_argument("--backup", metavar="SLUG", help="Connection to fail over to.")
    create.add_argument(
        "--contact",
        metavar="EMAIL",
        help="Who owns the provider account; reauthorization emails go there.",
    )
    create.add_argument(
        "--expect-account",
        metavar="ACCOUNT",
        help="The provider account (OIDC sub or userinfo id) the first grant must belong to.",
    )
    create.add_argument("--json", action="store_true", help="Print a JSON object.")


def create_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """`connection_create`'s keyword arguments from the parsed options (but the secret, the
    name and the backup, which the command reads and looks up itself)."""
    return {
        "slug": options["slug"],
        "client_id": options["client_id"],
        "preset": options["preset"],
        "preset_params": dict(options["preset_param"]),
        "issuer": options["issuer"],
        "authorize_url": options["authorize_url"],
        "token_url": options["token_url"],
        "revoke_url": options["revoke_url"],
        "userinfo_url": options["userinfo_url"],
        "auth_method": options["auth_method"],
        "token_request_params": dict(options["token_param"]),
        "token_request_headers": dict(options["token_header"]),
        "token_request_encoding": options["token_encoding"],
        "scopes": options["scope"],
        "refresh_lifetime_override": options["refresh_lifetime"],
        "refresh_expiry_override": options["refresh_expiry"] or "",
        "refresh_threshold": options["threshold"],
        "contact_email": options["contact"] or "",
        "expected_account": options["expect_account"] or "",
    }


def read_client_secret(*, client_secret: str | None, client_secret_file: str | None) -> str | None:
    """The secret from the option, the file or the environment; None when none was given (a
    public client has none; the service says whether the provider needs one)."""
    if client_secret is not None:
        return client_secret
    if client_secret_file is not None:
        try:
            if client_secret_file == "-":
                text = sys.stdin.read()
            else:
                with open(client_secret_file, encoding="utf-8") as fh:
                    text = fh.read()
        except OSError as exc:
            raise CommandError(f"Cannot read --client-secret-file: {exc.strerror}") from exc
        return text.rstrip("\r\n")
    return os.environ.get(SECRET_ENV)


def create_refusal(exc: ServiceError, *, secret_given: bool) -> CommandError:
    """A refused `connection create`; for a secret needed but not given, where it comes from."""
    error = refusal(exc, CREATE_OPTIONS)
    if exc.field != "client_secret" or secret_given:
        return error
    return CommandError(
        f"{error} Pass --client-secret-file PATH, set {SECRET_ENV}, or pass --client-secret."
    )


def add_consumers_arguments(consumers: CommandParser) -> None:
    consumers.description = (
        "List, add or remove the pipelines that use a connection, by their cron schedules.\n"
        "The sweep has a fresh token ready --lead minutes before each run, and the daily\n"
        "monitor marks the connection `expiring` when its refresh token would be dead at a\n"
        "consumer's next run. Without --add or --remove: list them.\n\n"
        "  connection consumers analytics --add nightly --cron '0 2 * * *' --tz Europe/Berlin"
    )
    consumers.add_argument("slug")
    change = consumers.add_mutually_exclusive_group()
    change.add_argument("--add", metavar="NAME", help="Add a consumer (with --cron).")
    change.add_argument("--remove", metavar="NAME", help="Remove the consumer of that name.")
    consumers.add_argument("--cron", metavar="EXPR", help="When it runs, e.g. '0 2 * * *'.")
    consumers.add_argument(
        "--tz", metavar="ZONE", help="Time zone the cron is read in (default UTC)."
    )
    consumers.add_argument(
        "--lead",
        type=non_negative_int,
        metavar="MIN",
        help="Have a fresh token this many minutes before each run (default 10).",
    )
    consumers.add_argument(
        "--run",
        type=non_negative_int,
        metavar="MIN",
        help="The token must stay valid this long after the run starts (default 60).",
    )
    consumers.add_argument("--json", action="store_true", help="Print JSON.")


def consumer_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """`consumer_add`'s keyword arguments (but the connection and the name)."""
    if not options["cron"]:
        raise CommandError("--add needs --cron EXPR, e.g. --cron '0 2 * * *'.")
    given = {
        "timezone": options["tz"],
        "lead_minutes": options["lead"],
        "run_minutes": options["run"],
    }
    return {"cron": options["cron"], **{k: v for k, v in given.items() if v is not None}}


def schedule_options_without_add(options: dict[str, Any]) -> list[str]:
    names = {"cron": "--cron", "tz": "--tz", "lead": "--lead", "run": "--run"}
    return [flag for name, flag in names.items() if options[name] is not None]
