"""An environment for a subprocess that loads the project's real settings (not tests.settings)."""

import os


def real_settings_env(*, drop: tuple[str, ...] = (), **env: str) -> dict[str, str]:
    """This process's environment without any TOKENADMIN_/DJANGO_ variable nor those in `drop`,
    with throwaway keys and `tokenadmin.settings`, then `env` on top."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TOKENADMIN_", "DJANGO_")) and name not in drop
    }
    return kept | {
        "DJANGO_SETTINGS_MODULE": "tokenadmin.settings",
        "SECRET_KEY": "subprocess-secret-key",
        "ENCRYPTION_KEY": "subprocess-encryption-key",
        **env,
    }
