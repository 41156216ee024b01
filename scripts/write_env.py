#!/usr/bin/env python3
"""Write a local ``.env`` with fresh random keys, once.

``make run`` calls this before anything touches Django, so a fresh checkout starts with its own
SECRET_KEY and ENCRYPTION_KEY instead of a shared default. An existing ``.env`` is never touched:
its ENCRYPTION_KEY is what decrypts the tokens already stored in the database, and replacing it
would make every stored secret unreadable.

Standard library only (it runs before the project is importable). Prints which file it wrote or
kept, never a value. Usage: ``python scripts/write_env.py [--path PATH]``.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def render_env(*, port: str) -> str:
    """Return the text of a new ``.env`` with freshly generated keys."""
    secret_key = secrets.token_urlsafe(50)  # 67 url-safe chars: no '$', quotes or spaces
    # A Fernet-format key (url-safe base64 of 32 random bytes): usable both as a plain string
    # (django-cryptography derives its AES key from it) and by cryptography.fernet / MultiFernet.
    encryption_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
    return (
        "# Written by scripts/write_env.py on first `make run`. Keep it private (mode 600).\n"
        "# Variables already set in the process environment take precedence over this file.\n"
        "# ENCRYPTION_KEY and SECRET_KEY decrypt the tokens stored in the database: back them\n"
        "# up and never change them (start-up refuses to run if stored secrets stop decrypting).\n"
        f"SECRET_KEY={secret_key}\n"
        f"ENCRYPTION_KEY={encryption_key}\n"
        "DEBUG=false\n"
        f"SITE_URL=http://localhost:{port}\n"
        "# Optional, see README / DESIGN.md 'Settings and scale':\n"
        "# ALLOWED_HOSTS=localhost,127.0.0.1\n"
        "# DATABASE_URL=postgres://user:password@127.0.0.1:5432/tokenadmin\n"
        "# EMAIL_URL=smtp://user:password@smtp.example.com:587\n"
        "# REDIS_URL=redis://127.0.0.1:6379/0\n"
    )


def write_env(*, path: Path, port: str) -> bool:
    """Create ``path`` with mode 600 unless it exists. Return True if it was written."""
    try:
        # O_EXCL: never overwrite, even if another process creates the file meanwhile.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_env(port=port))
    os.chmod(path, 0o600)  # the mode given to os.open is filtered by the umask
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--path",
        type=Path,
        default=PROJECT_ROOT / ".env",
        help="file to write (default: .env at the project root)",
    )
    args = parser.parse_args(argv)
    path: Path = args.path
    port = os.environ.get("PORT") or "8000"
    if write_env(path=path, port=port):
        print(f"write_env: wrote {path} with new random SECRET_KEY and ENCRYPTION_KEY (mode 600)")
    else:
        print(f"write_env: kept existing {path}")
        if path.is_file() and path.stat().st_mode & 0o077:
            print(f"write_env: warning: {path} is readable by others; consider chmod 600")
    return 0


if __name__ == "__main__":
    sys.exit(main())
