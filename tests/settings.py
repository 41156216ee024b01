"""Test settings: the real settings with throwaway keys and a file-backed test database.

A file (not :memory:) SQLite test database lets threads and processes in the concurrency tests
each open their own connection, as they would in production.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("ENCRYPTION_KEY", "test-encryption-key-not-for-production-0123456789")
os.environ.setdefault("SITE_URL", "http://testserver")

from tokenadmin.settings import *  # noqa: F403
from tokenadmin.settings import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"tokenadmin-test-{os.getpid()}.sqlite3")
    }
