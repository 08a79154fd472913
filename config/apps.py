from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project as an app, so its management commands (serve, seed_demo) are found."""

    name = "config"
    verbose_name = "Project"
