from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ChatappConfig(AppConfig):
    name = "chatapp"
    verbose_name = "Chat"

    def ready(self) -> None:
        from chatapp.signals import prompts_seed_defaults

        post_migrate.connect(prompts_seed_defaults, sender=self)
