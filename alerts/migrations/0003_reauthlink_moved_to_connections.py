from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0002_initial"),
        ("connections", "0002_reauthlink_moved_here"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ReauthLink")],
            database_operations=[],
        ),
    ]
