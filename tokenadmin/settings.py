"""tokenadmin settings: one file, everything from the environment (django-environ).

A local `.env` beside manage.py is read when present; `make run` writes one with random keys on
first run. Outside it, a missing secret stops start-up with a message naming the variable to set.

`TOKENADMIN_DEMO=1` (set by `make demo`) is demo mode: a built-in demo authorization server under
/demo-provider/ (django-oauth-toolkit, the optional `demo` extra), its own SQLite file, the ORM
broker, alerts on the console and every timing scaled to a 15-minute grant. Without it none of
that is installed or routed.
"""

from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

from tokenadmin.durations import parse_duration

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _required(name: str, hint: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. {hint} Put it in the environment or in {BASE_DIR / '.env'} "
            "(`make run` writes one with random keys on first run)."
        )
    return value


SECRET_KEY = _required("SECRET_KEY", "It signs sessions and reauthorization links.")
# django-cryptography derives its AES key from CRYPTOGRAPHY_KEY (its HMAC still uses SECRET_KEY).
CRYPTOGRAPHY_KEY = _required("ENCRYPTION_KEY", "It encrypts tokens and client secrets at rest.")

DEBUG = env.bool("DEBUG", default=False)
TOKENADMIN_DEMO = env.bool("TOKENADMIN_DEMO", default=False)
SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
_site = urlsplit(SITE_URL)
if _site.scheme not in ("http", "https") or not _site.hostname:
    raise ImproperlyConfigured(f"SITE_URL must be an absolute http(s) URL, got {SITE_URL!r}.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[_site.hostname, "localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS", default=[f"{_site.scheme}://{_site.netloc}"]
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "connections",
    "alerts",
]
if TOKENADMIN_DEMO:
    INSTALLED_APPS += ["oauth2_provider", "tokenadmin.demo"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # gunicorn serves no static files; whitenoise does, compressed and cache-busted.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "tokenadmin.urls"
WSGI_APPLICATION = "tokenadmin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if TOKENADMIN_DEMO:
    # Never the real database: the demo's provider, users and 15-minute grants stay apart.
    DATABASES = {
        "default": env.db(
            "TOKENADMIN_DEMO_DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'demo.sqlite3'}"
        )
    }
# Keep each thread's database connection instead of opening one per request: opening it costs
# more than the token endpoint's whole query. (No CONN_HEALTH_CHECKS: on PostgreSQL that is a
# `SELECT 1` per request; a connection that broke is dropped after the request that found it.)
# `?conn_max_age=N` in DATABASE_URL overrides.
DATABASES["default"].setdefault("CONN_MAX_AGE", 600)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so
    # read-then-write transactions wait (busy_timeout) instead of failing "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;"
            ),
            "transaction_mode": "IMMEDIATE",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The demo's alerts go to the console, whatever EMAIL_URL says: its addresses are made up.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
if TOKENADMIN_DEMO:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"tokenadmin@{_site.hostname}")

SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _site.scheme == "https"
# Cookies ignore ports: another Django site on the same host name (a local provider on
# 127.0.0.1:9000, say) would overwrite Django's default `sessionid`/`csrftoken` and end a consent
# trip as "started in another browser".
SESSION_COOKIE_NAME = "tokenadmin_session"
CSRF_COOKIE_NAME = "tokenadmin_csrftoken"
# Only behind a proxy that sets X-Forwarded-Proto itself; otherwise any client could claim https.
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Likewise: /metrics' address allow-list then uses the last X-Forwarded-For entry (our proxy's).
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact_secrets": {"()": "tokenadmin.logsafety.RedactSecretsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # urllib3 logs request URLs at DEBUG; keep it quiet so query strings never reach logs.
    "loggers": {"urllib3": {"level": "WARNING"}, "authlib": {"level": "WARNING"}},
}


# --- tokenadmin behaviour -------------------------------------------------------------------
def _warning_lead_times() -> tuple[timedelta, ...]:
    """TOKENADMIN_WARNING_LEAD_TIMES (durations: `10m,5m`) or TOKENADMIN_WARNING_DAYS (whole
    days: `14,7,3,1`), longest first. One spelling at a time, so neither silently wins."""
    durations = env.list("TOKENADMIN_WARNING_LEAD_TIMES", default=None)
    days = env.list("TOKENADMIN_WARNING_DAYS", cast=int, default=None)
    if durations is not None and days is not None:
        raise ImproperlyConfigured(
            "Both TOKENADMIN_WARNING_LEAD_TIMES and TOKENADMIN_WARNING_DAYS are set; keep one "
            "(TOKENADMIN_WARNING_DAYS=14,7 is TOKENADMIN_WARNING_LEAD_TIMES=14d,7d)."
        )
    if durations is None and days is None:
        durations = ["10m", "5m"] if TOKENADMIN_DEMO else ["14d", "7d", "3d", "1d"]
    if any(n <= 0 for n in days or ()):
        raise ImproperlyConfigured("TOKENADMIN_WARNING_DAYS: each lead time must be 1 or more.")
    leads = [timedelta(days=n) for n in days or ()]
    for text in durations or ():
        try:
            leads.append(parse_duration(text))
        except ValueError as exc:
            raise ImproperlyConfigured(f"TOKENADMIN_WARNING_LEAD_TIMES: {exc}.") from None
    return tuple(sorted(set(leads), reverse=True))


TOKENADMIN = {
    # Every HTTP call to a provider has this timeout (seconds).
    "HTTP_TIMEOUT": env.float("TOKENADMIN_HTTP_TIMEOUT", default=10.0),
    # A refresh lease outlives the HTTP timeout, so a holder never loses it mid-call.
    "LEASE_SECONDS": env.float("TOKENADMIN_LEASE_SECONDS", default=30.0),
    # How long a caller waits for another holder's refresh before giving up.
    "WAIT_SECONDS": env.float("TOKENADMIN_WAIT_SECONDS", default=35.0),
    # Reauthorization links stay valid this many days.
    "REAUTH_LINK_DAYS": env.int("TOKENADMIN_REAUTH_LINK_DAYS", default=7),
    # Transient failures in a row before a connection is `degraded`.
    "DEGRADED_AFTER_FAILURES": env.int("TOKENADMIN_DEGRADED_AFTER_FAILURES", default=3),
    # Seconds an access token is assumed to live when neither the provider's response nor its
    # preset says (source "assumed"): refreshed ahead of time, never taken as valid forever.
    "DEFAULT_ACCESS_LIFETIME": env.int("TOKENADMIN_DEFAULT_ACCESS_LIFETIME", default=3600),
    # The access-token sweep: how often it runs, how many connections it takes per run, how many
    # it refreshes at once and how long it may spend (below Q_CLUSTER's timeout).
    "SWEEP_INTERVAL_SECONDS": env.int("TOKENADMIN_SWEEP_INTERVAL_SECONDS", default=60),
    "SWEEP_BATCH": env.int("TOKENADMIN_SWEEP_BATCH", default=5000),
    "SWEEP_CONCURRENCY": env.int("TOKENADMIN_SWEEP_CONCURRENCY", default=16),
    "SWEEP_BUDGET_SECONDS": env.float("TOKENADMIN_SWEEP_BUDGET_SECONDS", default=75.0),
    # Cron of the daily expiry monitor and hours between health checks (setup_schedules).
    "MONITOR_CRON": env.str(
        "TOKENADMIN_MONITOR_CRON", default="* * * * *" if TOKENADMIN_DEMO else "0 3 * * *"
    ),
    "HEALTH_CHECK_HOURS": env.int("TOKENADMIN_HEALTH_CHECK_HOURS", default=6),
    # Remind people this long before each reauthorize-by date (timedeltas, longest first);
    # inside the longest a connection is `expiring`. Read through `connections.status`.
    "WARNING_LEAD_TIMES": _warning_lead_times(),
    # Minutes between runs of the reminder job (default schedule only): each reminder goes out
    # within this long after its lead time.
    "REMINDER_MINUTES": env.int(
        "TOKENADMIN_REMINDER_MINUTES", default=1 if TOKENADMIN_DEMO else 60
    ),
    # Client addresses and networks that may read /metrics without an API key (blank: none).
    "METRICS_ALLOWED_IPS": env.list("TOKENADMIN_METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"]),
    # A client secret older than this many days is due for rotation (one alert per secret).
    "CLIENT_SECRET_MAX_AGE_DAYS": env.int("TOKENADMIN_CLIENT_SECRET_MAX_AGE_DAYS", default=365),
    # Who is told about every event by default (`setup_alerts`), besides each connection's contact.
    "ALERT_EMAILS": env.list(
        "TOKENADMIN_ALERT_EMAILS", default=["demo-alerts@example.com"] if TOKENADMIN_DEMO else []
    ),
}

for _address in TOKENADMIN["ALERT_EMAILS"]:
    try:
        validate_email(_address)
    except ValidationError:
        raise ImproperlyConfigured(
            f"TOKENADMIN_ALERT_EMAILS: {_address!r} is not an email address; give a "
            "comma-separated list such as ops@example.com,data@example.com, or leave it blank."
        ) from None

for _entry in TOKENADMIN["METRICS_ALLOWED_IPS"]:
    try:
        ip_network(_entry, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"TOKENADMIN_METRICS_ALLOWED_IPS: {_entry!r} is not an address or network (CIDR); "
            "give a comma-separated list such as 127.0.0.1,10.0.0.0/8, or leave it blank."
        ) from None

# --- django-q2 ------------------------------------------------------------------------------
Q_CLUSTER = {
    # Deployments (or CI runs) sharing one Redis need distinct names, or they run each
    # other's tasks against their own databases.
    "name": env.str("Q_CLUSTER_NAME", default="tokenadmin"),
    "workers": env.int("Q_WORKERS", default=2),
    # A task's hard limit (below `retry`); room for a sweep's budget plus a last refresh's lease,
    # so the cluster never kills a worker mid-refresh (checked by tokenadmin.E003).
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "orm": "default",
}
# The demo keeps its tasks in its own database (ORM broker), never on a shared Redis.
REDIS_URL = "" if TOKENADMIN_DEMO else env.str("REDIS_URL", default="")
if REDIS_URL:
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = REDIS_URL

# --- demo mode (`make demo`) -----------------------------------------------------------------
if TOKENADMIN_DEMO:
    # Lifetimes of the demo authorization server's tokens (shorter ones only for tests).
    DEMO_ACCESS_SECONDS = env.int("TOKENADMIN_DEMO_ACCESS_SECONDS", default=120)
    DEMO_GRANT_SECONDS = env.int("TOKENADMIN_DEMO_GRANT_SECONDS", default=900)
    OAUTH2_PROVIDER = {
        "OAUTH2_VALIDATOR_CLASS": "tokenadmin.demo.validator.DemoValidator",
        "PKCE_REQUIRED": True,
        "ACCESS_TOKEN_EXPIRE_SECONDS": DEMO_ACCESS_SECONDS,
        # Rotating, with reuse detection; DOT's own expiry slides with each rotation, so the
        # validator adds the absolute limit (DEMO_GRANT_SECONDS from consent) and says so in
        # every token response (`refresh_token_expires_in`).
        "ROTATE_REFRESH_TOKEN": True,
        "REFRESH_TOKEN_REUSE_PROTECTION": True,
        "REFRESH_TOKEN_EXPIRE_SECONDS": DEMO_GRANT_SECONDS,
        "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
        "SCOPES": {"read": "Read your demo data"},
        "DEFAULT_SCOPES": ["read"],
    }
    # The console is where the demo's refreshes and alert emails show: keep django-q's
    # per-task lines (six schedules a minute) off it. (Its `log_level` applies only when no
    # handler exists up the tree, and the root one does.)
    LOGGING["loggers"]["django-q"] = {"level": "WARNING"}
