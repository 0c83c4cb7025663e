import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('credits', '0003_runs'),
        ('files', '0002_results_stored'),
    ]

    operations = [
        migrations.AddField(
            model_name='jobinput',
            name='run',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='inputs', to='credits.run'),
        ),
    ]
