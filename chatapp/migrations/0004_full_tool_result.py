from django.db import migrations, models


def move_full_results(apps, schema_editor):
    Message = apps.get_model("chatapp", "Message")
    FullToolResult = apps.get_model("chatapp", "FullToolResult")
    FullToolResult.objects.bulk_create(
        FullToolResult(message_id=m.id, conversation_id=m.conversation_id, content=m.content_full)
        for m in Message.objects.exclude(content_full="").only("id", "conversation_id", "content_full")
    )


def restore_full_results(apps, schema_editor):
    Message = apps.get_model("chatapp", "Message")
    FullToolResult = apps.get_model("chatapp", "FullToolResult")
    for full in FullToolResult.objects.all():
        Message.objects.filter(id=full.message_id).update(content_full=full.content)


class Migration(migrations.Migration):

    dependencies = [
        ("chatapp", "0003_message_content_full"),
    ]

    operations = [
        migrations.CreateModel(
            name="FullToolResult",
            fields=[
                ("message_id", models.UUIDField(editable=False, primary_key=True, serialize=False)),
                ("content", models.TextField()),
                (
                    "conversation",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE,
                        related_name="full_tool_results",
                        to="chatapp.conversation",
                    ),
                ),
            ],
        ),
        migrations.RunPython(move_full_results, restore_full_results),
        migrations.RemoveField(model_name="message", name="content_full"),
    ]
