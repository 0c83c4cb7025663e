import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0003_runs'),
        ('jobs', '0009_status_choices'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='run',
            field=models.OneToOneField(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='job', to='credits.run'),
        ),
    ]
