"""Standalone settings for the test authorization server (never the project's settings).

Configured from environment variables set by ``harness.AuthServer.start``.
"""

import os
from pathlib import Path

from tests.authserver.keys import generate_rsa_private_key_pem

BASE_DIR = Path(__file__).resolve().parent
BASE_URL = os.environ.get("AUTHSERVER_BASE_URL", "http://127.0.0.1:8765").rstrip("/")

# Test-only server: a fixed key is fine, nothing signed with it outlives the test run.
SECRET_KEY = "authserver-test-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "oauth2_provider",
    "tests.authserver",
]

MIDDLEWARE = [
    # First, so faults and latency apply before any Django or DOT work happens.
    "tests.authserver.middleware.TokenEndpointFaultMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.authserver.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("AUTHSERVER_DB", str(BASE_DIR / "authserver.sqlite3")),
        "OPTIONS": {
            # Many threads write tokens at once: WAL lets readers proceed, IMMEDIATE avoids the
            # read-to-write lock upgrade that fails instantly with "database is locked".
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Fast hashing: client secrets and user passwords are hashed on every token request.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "/accounts/login/"

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    # The harness passes the key so a restarted server keeps verifying earlier id_tokens.
    "OIDC_RSA_PRIVATE_KEY": os.environ.get("AUTHSERVER_RSA_KEY") or generate_rsa_private_key_pem(),
    # Set explicitly: DOT otherwise derives the issuer from each request's Host header.
    "OIDC_ISS_ENDPOINT": BASE_URL + "/o",
    "PKCE_REQUIRED": True,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("AUTHSERVER_ACCESS_TTL", "3600")),
    "REFRESH_TOKEN_EXPIRE_SECONDS": int(os.environ.get("AUTHSERVER_REFRESH_TTL", "600")),
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    "SCOPES": {
        "openid": "OpenID Connect",
        "profile": "Profile",
        "email": "Email address",
        "offline_access": "Offline access",
        "read": "Read",
        "introspection": "Token introspection",
    },
    "DEFAULT_SCOPES": ["read"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    # Per-request lines would drown pytest output; errors still reach stderr.
    "loggers": {
        "django.server": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
    },
}
