"""Keep bearer secrets that travel in URLs out of every log line.

Reauthorization links carry a signed token in their path, OAuth callbacks carry `code` and
`state` in their query, the calendar feed its `key`; Django logs 4xx paths and gunicorn logs
every request line and Referer. Both go through `redact()`.
"""

import logging
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

_PATTERNS = (
    (re.compile(r"(/reauth/)[^/\s\"?]+"), r"\1[redacted]"),
    (
        re.compile(r"([?&](?:code|state|access_token|refresh_token|id_token|token|key)=)[^&\s\"]+"),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """A logging filter for Django's handlers: rewrites the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


class RedactingGunicornLogger(GunicornLogger):
    """gunicorn's logger with the request line, path, query and Referer redacted.

    Use with `gunicorn --logger-class tokenadmin.logsafety.RedactingGunicornLogger`.
    """

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
