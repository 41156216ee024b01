"""Client authentication `none`: a public client (RFC 7591 §2), with no client secret.

Looker OAuth clients are public, but until now the Looker preset said client_secret_post and a
secret was required, so its connections hold a stand-in secret (Looker issues none). Providers
made from that preset, still at client_secret_post and with PKCE on, become `none`, and their
connections' stand-in secrets are removed: a connection to a public client has no secret. A
provider an admin edited (another method, or PKCE off) is left as it is.
"""

from django.db import migrations, models

PUBLIC_PRESETS = ("looker",)
OLD_METHOD = "client_secret_post"


def make_preset_public_clients(apps, schema_editor):
    """Queryset updates only: no row is loaded, so no secret is decrypted (and a row whose
    ciphertext cannot be decrypted is blanked like any other)."""
    Provider = apps.get_model("connections", "Provider")
    Connection = apps.get_model("connections", "Connection")
    providers = list(
        Provider.objects.filter(
            preset__in=PUBLIC_PRESETS, token_endpoint_auth_method=OLD_METHOD, use_pkce=True
        ).values_list("pk", flat=True)
    )
    Provider.objects.filter(pk__in=providers).update(token_endpoint_auth_method="none")
    Connection.objects.filter(provider__in=providers).update(
        client_secret="", client_secret_set_at=None
    )


def make_public_clients_post_again(apps, schema_editor):
    """Back to a schema that knows no `none`: every public-client provider (the Looker ones
    this migration changed, and any made or switched since) says client_secret_post again.
    The stand-in secrets removed going forward cannot be restored: their connections have no
    secret, and an admin must type one in before the older code can refresh them."""
    Provider = apps.get_model("connections", "Provider")
    Provider.objects.filter(token_endpoint_auth_method="none").update(
        token_endpoint_auth_method=OLD_METHOD
    )


class Migration(migrations.Migration):
    dependencies = [("connections", "0005_preset_token_request_quirks")]

    operations = [
        migrations.AlterField(
            model_name="provider",
            name="token_endpoint_auth_method",
            field=models.CharField(
                choices=[
                    ("client_secret_basic", "HTTP Basic (client_secret_basic)"),
                    ("client_secret_post", "Form body (client_secret_post)"),
                    ("none", "No secret: public client with PKCE (none)"),
                ],
                default="client_secret_basic",
                max_length=32,
            ),
        ),
        migrations.RunPython(make_preset_public_clients, make_public_clients_post_again),
    ]
