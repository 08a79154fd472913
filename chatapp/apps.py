from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class ChatappConfig(AppConfig):
    name = "chatapp"
    verbose_name = "Chat"

    def ready(self) -> None:
        from chatapp.configuration import version_seed
        from chatapp.models import McpServer
        from chatapp.signals import mcp_server_changed, prompts_seed_defaults

        post_migrate.connect(prompts_seed_defaults, sender=self)
        post_migrate.connect(version_seed, sender=self)
        post_save.connect(mcp_server_changed, sender=McpServer)
        post_delete.connect(mcp_server_changed, sender=McpServer)
