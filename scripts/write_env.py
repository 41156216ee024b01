#!/usr/bin/env python3
"""Write a local ``.env`` with fresh random keys once, and keep its SITE_URL the one given.

``make run`` calls this before anything touches Django, so a fresh checkout starts with its own
SECRET_KEY and ENCRYPTION_KEY instead of a shared default. The keys of an existing ``.env`` are
never touched: its ENCRYPTION_KEY is what decrypts the tokens already stored in the database,
and replacing it would make every stored secret unreadable.

SITE_URL is different: it is the address people and providers use, and every process reads it
(the server, and each later ``manage.py connection reauth-link``, which reads only ``.env``).
When the environment gives one (``SITE_URL=http://127.0.0.1:18700 make run``), that one is
written into ``.env``, replacing a different value there, and said so on the console; otherwise
the server would build links and the OAuth callback for one host name while the CLI printed
links for another, and a consent started on one name cannot finish on the other (the session
cookie belongs to one host name).

``--print-bind`` prints the port ``make run`` should bind and the SITE_URL in effect, separated
by a space: PORT when set, else SITE_URL's explicit port, else 8000.

Standard library only (it runs before the project is importable). Prints which file it wrote or
kept and the SITE_URL (not a secret), never a key. Usage:
``python scripts/write_env.py [--path PATH] [--print-bind]``.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = "8000"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
# django-environ's own line pattern (environ.Env.read_env): the last assignment of a key wins.
ASSIGNMENT = re.compile(r"\A(?:export )?([A-Za-z_0-9]+)=(.*)\Z")
# A URL fit for an unquoted .env value: no spaces, quotes, '#' or '$' (django-environ reads a
# leading '$' as a reference to another variable).
SAFE_VALUE = re.compile(r"\A[A-Za-z0-9._~:/?&=%+,;@!*()\[\]-]+\Z")


class SiteUrlError(ValueError):
    pass


def normalize_site_url(value: str) -> str:
    """``value`` without a trailing slash, or SiteUrlError saying what is wrong with it."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SiteUrlError(
            f"SITE_URL must be an absolute http(s) URL such as http://127.0.0.1:8000, got {value!r}"
        )
    if not SAFE_VALUE.match(url):
        raise SiteUrlError(f"SITE_URL holds a character .env cannot keep unquoted: {value!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError as exc:
        raise SiteUrlError(f"SITE_URL has an invalid port: {value!r}") from exc
    return url


def read_env_value(text: str, key: str) -> str | None:
    """The value ``key`` gets from a .env text, as django-environ reads it (None: not set)."""
    value = None
    for line in text.splitlines():
        match = ASSIGNMENT.match(line)
        if match and match.group(1) == key:
            value = match.group(2)
            for quote in ("'", '"'):
                if len(value) >= 2 and value[0] == value[-1] == quote:
                    value = value[1:-1]
    return value


def set_env_value(text: str, key: str, value: str) -> str:
    """``text`` with every assignment of ``key`` set to ``value`` (appended if there is none)."""
    lines = text.splitlines(keepends=True)
    found = False
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        match = ASSIGNMENT.match(body)
        if match and match.group(1) == key:
            # Kept as written: an `export ` prefix (a .env that shell scripts source) and the
            # line's own ending.
            export = "export " if body.startswith("export ") else ""
            lines[index] = f"{export}{key}={value}{line[len(body) :]}"
            found = True
    if not found:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{key}={value}\n")
    return "".join(lines)


def render_env(*, site_url: str) -> str:
    """Return the text of a new ``.env`` with freshly generated keys."""
    secret_key = secrets.token_urlsafe(50)  # 67 url-safe chars: no '$', quotes or spaces
    # A Fernet-format key (url-safe base64 of 32 random bytes): usable both as a plain string
    # (django-cryptography derives its AES key from it) and by cryptography.fernet / MultiFernet.
    encryption_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
    return (
        "# Written by scripts/write_env.py on first `make run`. Keep it private (mode 600).\n"
        "# Variables already set in the process environment take precedence over this file;\n"
        "# a SITE_URL given to `make run` is written here, so the CLI's links use it too.\n"
        "# ENCRYPTION_KEY and SECRET_KEY decrypt the tokens stored in the database: back them\n"
        "# up and never change them (start-up refuses to run if stored secrets stop decrypting).\n"
        f"SECRET_KEY={secret_key}\n"
        f"ENCRYPTION_KEY={encryption_key}\n"
        "DEBUG=false\n"
        f"SITE_URL={site_url}\n"
        "# Optional, see README / DESIGN.md 'Settings and scale':\n"
        "# ALLOWED_HOSTS=localhost,127.0.0.1\n"
        "# DATABASE_URL=postgres://user:password@127.0.0.1:5432/tokenadmin\n"
        "# EMAIL_URL=smtp://user:password@smtp.example.com:587\n"
        "# REDIS_URL=redis://127.0.0.1:6379/0\n"
    )


def write_env(*, path: Path, site_url: str) -> bool:
    """Create ``path`` with mode 600 unless it exists. Return True if it was written."""
    try:
        # O_EXCL: never overwrite, even if another process creates the file meanwhile.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_env(site_url=site_url))
    os.chmod(path, 0o600)  # the mode given to os.open is filtered by the umask
    return True


def update_site_url(*, path: Path, site_url: str) -> str | None:
    """Make ``path``'s SITE_URL ``site_url``, keeping every other line as it was.

    Returns the value it replaced ("" when there was none), or None when it already matched.
    The file is replaced atomically (a temporary file renamed over it) with the same mode, so
    a crash never leaves a half-written .env and its keys."""
    path = path.resolve()  # a symlinked .env keeps its link: the file it names is replaced
    with path.open(encoding="utf-8", newline="") as fh:  # line endings as they are
        text = fh.read()
    current = read_env_value(text, "SITE_URL")
    if current is not None and current.strip().rstrip("/") == site_url:
        return None
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=".env.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(set_env_value(text, "SITE_URL", site_url))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return current or ""


def site_url_in_effect(*, path: Path, environ: dict[str, str]) -> str:
    """What Django will read: the environment's SITE_URL, else the .env's, else the default."""
    given = environ.get("SITE_URL", "").strip()
    if given:
        return given.rstrip("/")
    if path.is_file():
        value = read_env_value(path.read_text(encoding="utf-8"), "SITE_URL")
        if value and value.strip():
            return value.strip().rstrip("/")
    return f"http://localhost:{environ.get('PORT') or DEFAULT_PORT}"


def bind_port(*, site_url: str, environ: dict[str, str]) -> str:
    """The port to listen on: PORT when set, else a local SITE_URL's explicit port, else 8000.

    Only a loopback SITE_URL names our own port: any other is what a proxy in front listens on
    (https://tokens.example.com:8443), which gunicorn must not try to take."""
    if environ.get("PORT"):
        return environ["PORT"]
    try:
        parts = urlsplit(site_url)
        port = parts.port if parts.hostname in LOOPBACK_NAMES else None
    except ValueError:
        port = None
    return str(port) if port else DEFAULT_PORT


def port_warning(*, site_url: str, port: str) -> str | None:
    """A warning when SITE_URL names this machine on another port than the one bound (no
    proxy is likely in between, so its links would reach nothing)."""
    parts = urlsplit(site_url)
    if parts.hostname not in LOOPBACK_NAMES:
        return None
    site_port = parts.port or (443 if parts.scheme == "https" else 80)
    if str(site_port) == port:
        return None
    return (
        f"SITE_URL {site_url} points at port {site_port}, but the server listens on {port}: "
        "links and the OAuth callback will not reach it. Unset PORT (make run then binds "
        "SITE_URL's port) or make them agree."
    )


def sync_env(*, path: Path, environ: dict[str, str]) -> list[str]:
    """Write or update ``path`` for ``environ``; return the console lines (no secret in them)."""
    given = environ.get("SITE_URL", "").strip()
    site_url = normalize_site_url(given) if given else None
    replaced = None
    if write_env(path=path, site_url=site_url or site_url_in_effect(path=path, environ=environ)):
        lines = [f"wrote {path} with new random SECRET_KEY and ENCRYPTION_KEY (mode 600)"]
    elif site_url is not None and (replaced := update_site_url(path=path, site_url=site_url)):
        lines = [
            f"SITE_URL in {path} was {replaced}; now {site_url}, as given in the environment "
            "(the given one wins). Links and the OAuth callback use it from now on: register "
            f"{site_url}/oauth/callback/ as the redirect URI at your providers."
        ]
    elif replaced == "":
        lines = [f"added SITE_URL={site_url} to {path}, as given in the environment"]
    else:
        lines = [f"kept existing {path}"]
        if path.is_file() and path.stat().st_mode & 0o077:
            lines.append(f"warning: {path} is readable by others; consider chmod 600")
    effective = site_url_in_effect(path=path, environ=environ)
    lines.append(f"SITE_URL={effective}")
    warning = port_warning(site_url=effective, port=bind_port(site_url=effective, environ=environ))
    if warning:
        lines.append(f"warning: {warning}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--path",
        type=Path,
        default=PROJECT_ROOT / ".env",
        help="file to write (default: .env at the project root)",
    )
    parser.add_argument(
        "--print-bind",
        action="store_true",
        help="print '<port> <SITE_URL>' for make run and change nothing",
    )
    args = parser.parse_args(argv)
    path: Path = args.path
    environ = dict(os.environ)
    if args.print_bind:
        site_url = site_url_in_effect(path=path, environ=environ)
        print(bind_port(site_url=site_url, environ=environ), site_url)
        return 0
    try:
        lines = sync_env(path=path, environ=environ)
    except SiteUrlError as exc:
        print(f"write_env: error: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(f"write_env: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
