import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("celery_triggers", "0002_deadline")]

    operations = [
        migrations.CreateModel(
            name="FireKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=256)),
                ("names", models.JSONField(default=list)),
                (
                    "session",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="celery_triggers.session"
                    ),
                ),
            ],
            options={"verbose_name": "fire idempotency key"},
        ),
        migrations.AddConstraint(
            model_name="firekey",
            constraint=models.UniqueConstraint(fields=("session", "key"), name="ct_key_unique"),
        ),
    ]
