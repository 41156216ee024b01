"""One way to fingerprint a secret for lookup (link nonces, OAuth state, API keys)."""

import hashlib


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
