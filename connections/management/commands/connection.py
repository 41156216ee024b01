"""``manage.py connection``: create, inspect and use connections from a shell.

Subcommands: create, list, show, token, refresh, check, reauth-link, presets. Output never
contains a token or secret, except `token`, whose whole stdout is the access token.
"""

import argparse
import os
import re
import sys
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug
from django.db import IntegrityError
from django.utils.text import slugify

from connections import lifecycle, monitoring
from connections.links import build_reauth_link
from connections.management.commands._output import (
    connection_summary,
    render_connection_table,
    render_detail,
    render_json,
    render_table,
)
from connections.models import AuthMethod, Connection, Provider, RefreshAttempt, RefreshExpiry
from connections.presets import (
    REFRESH_SCOPES,
    PresetError,
    get_preset,
    list_presets,
    provider_from_issuer,
    provider_from_preset,
    provider_from_urls,
)

SECRET_ENV = "TOKENADMIN_CLIENT_SECRET"

# Exit codes, documented in `--help`. 2 is also argparse's code for a malformed command line.
EXIT_ERROR = 1
EXIT_UNKNOWN = 2
EXIT_NEEDS_PERSON = 3
EXIT_PROVIDER_DOWN = 4

EXIT_CODES_HELP = """exit codes:
  0  success
  1  error (bad option value, URL, preset or discovery failure, duplicate slug, ...)
  2  malformed command line, or no connection with that slug
  3  the connection cannot give a token until a person acts: pending (never
     authorized), needs_reauth or disabled -- see `connection reauth-link SLUG`
  4  the provider is unavailable or failing; retry later (the message says when)"""

DURATION = re.compile(r"^(\d+)([dhms]?)$")
UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds", "": "days"}


def parse_lifetime(value: str) -> timedelta:
    """`90d`, `12h`, `30m`, `3600s`, or a bare number of days."""
    match = DURATION.match(value.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a lifetime; use e.g. 90d, 12h, 30m, 3600s or 90 (days)"
        )
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def parse_param(value: str) -> tuple[str, str]:
    name, sep, param = value.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=VALUE")
    return name.strip(), param.strip()


def non_negative_int(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds >= 0")
    return int(value)


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return int(value)


class Command(BaseCommand):
    help = (
        "Create, list and inspect OAuth connections; print a valid access token for scripts. "
        "Run `connection SUBCOMMAND --help` for details.\n\n" + EXIT_CODES_HELP
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="SUBCOMMAND")
        raw = {"formatter_class": argparse.RawDescriptionHelpFormatter}
        self._add_create(sub.add_parser("create", help="Create a pending connection.", **raw))

        listing = sub.add_parser("list", help="List connections.")
        listing.add_argument("--json", action="store_true", help="Print a JSON array.")

        show = sub.add_parser("show", help="Show one connection.")
        show.add_argument("slug")
        show.add_argument("--json", action="store_true", help="Print a JSON object.")

        token = sub.add_parser(
            "token",
            help="Print a valid access token (only the token).",
            description="Print the connection's access token and a newline, nothing else, "
            "refreshing it first when it expires within the threshold or --min-ttl. Errors go "
            "to stderr.\n\n" + EXIT_CODES_HELP,
            **raw,
        )
        token.add_argument("slug")
        token.add_argument(
            "--min-ttl",
            type=non_negative_int,
            metavar="SECONDS",
            help="The token must stay valid at least this long.",
        )

        refresh = sub.add_parser(
            "refresh",
            help="Refresh the access token now; print the new expiry.",
            description="Force a refresh at the provider.\n\n" + EXIT_CODES_HELP,
            **raw,
        )
        refresh.add_argument("slug")

        link = sub.add_parser("reauth-link", help="Print a new reauthorization link.")
        link.add_argument("slug")
        link.add_argument("--days", type=positive_int, help="Days the link stays valid.")

        check = sub.add_parser(
            "check",
            help="Run the connection's health check now (a canary call with its token).",
            description="Health check now.\n\n" + EXIT_CODES_HELP,
            **raw,
        )
        check.add_argument("slug")

        sub.add_parser("presets", help="List provider presets and their parameters.")

    def _add_create(self, create: CommandParser) -> None:
        create.description = (
            "Create a pending connection and print the link that authorizes it.\n\n"
            "The client secret comes from --client-secret, --client-secret-file PATH ('-' for "
            f"stdin) or the environment variable {SECRET_ENV}; the last two keep it out of "
            "shell history and process lists.\n\n" + EXIT_CODES_HELP
        )
        create.add_argument("name", help="Display name, e.g. 'Analytics export'.")
        create.add_argument("--slug", help="URL-safe id (default: slugified NAME).")
        create.add_argument("--client-id", required=True)
        secret = create.add_mutually_exclusive_group()
        secret.add_argument(
            "--client-secret", help=f"Prefer --client-secret-file or ${SECRET_ENV}."
        )
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
            "(default: client_secret_basic, which RFC 6749 §2.3.1 requires servers to support).",
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
        create.add_argument("--json", action="store_true", help="Print a JSON object.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, "_" + action.replace("-", "_"))(**options)

    # --- helpers ---------------------------------------------------------------------------
    def _get(self, slug: str) -> Connection:
        connection = (
            Connection.objects.select_related("provider", "backup").filter(slug=slug).first()
        )
        if connection is None:
            raise CommandError(f"No connection with slug {slug!r}.", returncode=EXIT_UNKNOWN)
        return connection

    def _unavailable(self, exc: lifecycle.TokenUnavailable, slug: str) -> CommandError:
        if isinstance(exc, lifecycle.NotAuthorized | lifecycle.NeedsReauth):
            hint = f" Authorize it: manage.py connection reauth-link {slug}"
            return CommandError(f"{exc} [{exc.code}]{hint}", returncode=EXIT_NEEDS_PERSON)
        if isinstance(exc, lifecycle.ConnectionDisabled):
            return CommandError(f"{exc} [{exc.code}]", returncode=EXIT_NEEDS_PERSON)
        retry = (
            f"retry after {max(1, round(exc.retry_after))} s" if exc.retry_after else "retry later"
        )
        return CommandError(f"{exc} [{exc.code}]; {retry}", returncode=EXIT_PROVIDER_DOWN)

    def _client_secret(self, *, client_secret: str | None, client_secret_file: str | None) -> str:
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
        if SECRET_ENV in os.environ:
            return os.environ[SECRET_ENV]
        raise CommandError(
            f"No client secret: pass --client-secret-file PATH, set {SECRET_ENV}, "
            "or pass --client-secret."
        )

    def _provider(self, options: dict[str, Any]) -> Provider:
        url_only = [
            f for f in ("token_url", "revoke_url", "userinfo_url", "auth_method") if options[f]
        ]
        if not options["authorize_url"] and url_only:
            flag = "--" + url_only[0].replace("_", "-")
            raise CommandError(f"{flag} goes with --authorize-url.")
        if options["preset_param"] and not options["preset"]:
            raise CommandError("--preset-param goes with --preset.")
        if options["authorize_url"] and not options["token_url"]:
            raise CommandError("--authorize-url needs --token-url.")
        try:
            if options["preset"]:
                preset = get_preset(options["preset"])
                provider = provider_from_preset(preset.slug, params=dict(options["preset_param"]))
                if preset.notes:
                    self.stderr.write(f"Note on preset {preset.slug}: {preset.notes}")
                return provider
            if options["issuer"]:
                return provider_from_issuer(options["issuer"])
            return provider_from_urls(
                options["authorize_url"],
                options["token_url"],
                revoke_url=options["revoke_url"] or "",
                userinfo_url=options["userinfo_url"] or "",
                auth_method=options["auth_method"] or AuthMethod.CLIENT_SECRET_BASIC,
            )
        except PresetError as exc:
            raise CommandError(str(exc)) from exc

    def _scopes(self, requested: list[str], provider: Provider) -> str:
        scopes = list(dict.fromkeys(s for group in requested for s in group.split()))
        if not scopes:
            return ""
        needed = [s for s in provider.default_scopes.split() if s in REFRESH_SCOPES]
        added = [s for s in needed if s not in scopes]
        if added:
            # Without it the provider issues no refresh token and the connection cannot live.
            self.stderr.write(
                f"Also requesting {' '.join(added)}: {provider.name} needs it "
                "to issue a refresh token."
            )
        return " ".join(scopes + added)

    # --- subcommands -----------------------------------------------------------------------
    def _create(self, *, name: str, slug: str | None, **options: Any) -> None:
        slug = slug or slugify(name)
        try:
            validate_slug(slug)
        except ValidationError as exc:
            raise CommandError(f"{slug!r} is not a valid slug (letters, digits, - and _).") from exc
        if len(slug) > Connection._meta.get_field("slug").max_length:
            raise CommandError(f"Slug {slug!r} is too long (at most 50 characters).")
        if Connection.objects.filter(slug=slug).exists():
            raise CommandError(f"A connection with slug {slug!r} already exists; pass --slug.")
        backup = self._get(options["backup"]) if options["backup"] else None
        secret = self._client_secret(
            client_secret=options["client_secret"],
            client_secret_file=options["client_secret_file"],
        )
        provider = self._provider(options)
        fields: dict[str, Any] = {
            "name": name,
            "slug": slug,
            "provider": provider,
            "backup": backup,
            "client_id": options["client_id"],
            "client_secret": secret,
            "scopes": self._scopes(options["scope"], provider),
            "refresh_lifetime_override": options["refresh_lifetime"],
            "refresh_expiry_override": options["refresh_expiry"] or "",
        }
        if options["threshold"] is not None:
            fields["refresh_threshold"] = options["threshold"]
        try:
            connection = Connection.objects.create(**fields)
        except IntegrityError as exc:
            raise CommandError(f"A connection with slug {slug!r} already exists.") from exc
        link = build_reauth_link(connection, created_for="manage.py connection create")
        if options["json"]:
            self.stdout.write(render_json({**connection_summary(connection), "reauth_link": link}))
            return
        self.stdout.write(
            f"Created connection {connection.slug} (status: {connection.status}) "
            f"at provider {provider.slug}.\n"
            f"Open this link to authorize it:\n{link}"
        )

    def _list(self, *, json: bool, **_: Any) -> None:
        connections = list(Connection.objects.select_related("provider", "backup"))
        if json:
            self.stdout.write(render_json([connection_summary(c) for c in connections]))
        elif connections:
            self.stdout.write(render_connection_table(connections))
        else:
            self.stdout.write("No connections yet. Create one with `connection create`.")

    def _show(self, *, slug: str, json: bool, **_: Any) -> None:
        connection = self._get(slug)
        if json:
            self.stdout.write(render_json(connection_summary(connection)))
        else:
            self.stdout.write(render_detail(connection))

    def _token(self, *, slug: str, min_ttl: int | None, **_: Any) -> None:
        connection = self._get(slug)
        try:
            fresh = lifecycle.get_access_token(connection, min_ttl=min_ttl)
        except lifecycle.TokenUnavailable as exc:
            raise self._unavailable(exc, slug) from exc
        if not fresh.access_token:
            raise CommandError(f"{slug} has no access token.", returncode=EXIT_NEEDS_PERSON)
        self.stdout.write(fresh.access_token)

    def _refresh(self, *, slug: str, **_: Any) -> None:
        connection = self._get(slug)
        try:
            fresh = lifecycle.refresh_connection(
                connection, trigger=RefreshAttempt.Trigger.FORCED, force=True
            )
        except lifecycle.TokenUnavailable as exc:
            raise self._unavailable(exc, slug) from exc
        summary = connection_summary(fresh)
        access = summary["access_expires_at"] or "unknown"
        refresh = summary["refresh_expires_at"] or "unknown"
        self.stdout.write(
            f"Refreshed {slug}: access token expires {access} ({summary['access_expiry_source']});"
            f" refresh token expires {refresh} ({summary['refresh_expiry_source']})."
        )

    def _reauth_link(self, *, slug: str, days: int | None, **_: Any) -> None:
        connection = self._get(slug)
        self.stdout.write(
            build_reauth_link(connection, created_for="manage.py connection reauth-link", days=days)
        )

    def _check(self, *, slug: str, **_: Any) -> None:
        connection = self._get(slug)
        try:
            lifecycle.get_access_token(connection)
        except lifecycle.TokenUnavailable as exc:
            raise self._unavailable(exc, slug) from exc
        check = monitoring.check_health(connection)
        if check is None:
            raise CommandError(
                f"{slug} has no health check: set its test URL, or the provider's userinfo or "
                "introspection endpoint.",
                returncode=EXIT_ERROR,
            )
        what = (
            f"{check.get_method_display()}, HTTP {check.http_status or '-'}, {check.latency_ms} ms"
        )
        if not check.ok:
            connection.refresh_from_db(fields=["status", "status_reason"])
            code = EXIT_NEEDS_PERSON if connection.status == "needs_reauth" else EXIT_PROVIDER_DOWN
            raise CommandError(
                f"{slug}: health check failed ({what}): {check.message}", returncode=code
            )
        self.stdout.write(f"{slug}: healthy ({what}).")

    def _presets(self, **_: Any) -> None:
        rows = [
            [p.slug, " ".join(f"{n}=…" for n in p.params), p.refresh_token_expiry, p.name]
            for p in list_presets()
        ]
        self.stdout.write(render_table(["preset", "params", "refresh expiry", "name"], rows))
