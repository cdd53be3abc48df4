from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("celery_triggers", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Deadline",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("session_uid", models.CharField(max_length=1024, verbose_name="session UID")),
                ("name", models.CharField(max_length=256)),
                ("due", models.FloatField(db_index=True)),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("session_uid", "name"), name="ct_deadline_unique")],
            },
        ),
    ]
