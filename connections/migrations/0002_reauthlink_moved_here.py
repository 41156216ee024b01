"""Reauthorization links move from `alerts` to `connections`, beside the consent flow.

The table is taken over as it is (state only), then renamed; alerts 0003 drops the model from
its own state afterwards, so `alerts` depends on `connections` and never the reverse.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0002_initial"),
        ("connections", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ReauthLink",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("nonce_hash", models.CharField(max_length=64, unique=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("expires_at", models.DateTimeField()),
                        ("consumed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_for",
                            models.CharField(blank=True, help_text="Why it was made.", max_length=200),
                        ),
                        (
                            "connection",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="reauth_links",
                                to="connections.connection",
                            ),
                        ),
                    ],
                    options={"ordering": ["-created_at"], "db_table": "alerts_reauthlink"},
                ),
                migrations.AlterField(
                    model_name="authorizationrequest",
                    name="reauth_link",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to="connections.reauthlink",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="reauthlink", table=None),
    ]
