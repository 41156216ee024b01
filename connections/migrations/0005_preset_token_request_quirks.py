"""Providers made from a preset before presets carried token-request quirks get them now.

A preset's provider is reused, not re-made, so without this an existing Shopify provider would
keep asking for non-expiring tokens (no `expiring=1`) and an Atlassian one would keep sending
form bodies. Only values still at their defaults are filled: an admin's edit is kept. The data
is frozen here (as presets.json had it), so later preset edits never rewrite history.
"""

from datetime import timedelta

from django.db import migrations

QUIRKS = {
    "shopify": {"token_request_params": {"expiring": "1"}},
    "intuit-quickbooks": {
        "token_request_headers": {
            "Accept": "application/json",
            "x-include-refresh-token-hard-expires-in": "true",
        }
    },
    "github-app": {"token_request_headers": {"Accept": "application/json"}},
    "atlassian": {"token_request_encoding": "json"},
    "notion": {"token_request_encoding": "json"},
    "looker": {"token_request_encoding": "json"},
}
DEFAULTS = {
    "token_request_params": {},
    "token_request_headers": {},
    "token_request_encoding": "form",
}
SALESFORCE_SESSION_TIMEOUT = timedelta(hours=2)


def fill_preset_quirks(apps, schema_editor):
    Provider = apps.get_model("connections", "Provider")
    for provider in Provider.objects.filter(preset__in=[*QUIRKS, "salesforce"]):
        changed = []
        for name, value in QUIRKS.get(provider.preset, {}).items():
            if getattr(provider, name) == DEFAULTS[name]:
                setattr(provider, name, value)
                changed.append(name)
        if provider.preset == "salesforce" and provider.access_token_lifetime is None:
            provider.access_token_lifetime = SALESFORCE_SESSION_TIMEOUT
            changed.append("access_token_lifetime")
        if changed:
            provider.save(update_fields=changed)


class Migration(migrations.Migration):
    dependencies = [("connections", "0004_held_grants")]

    operations = [migrations.RunPython(fill_preset_quirks, migrations.RunPython.noop)]
