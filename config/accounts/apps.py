from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """The account pages as an app, so their static files (the passkey script) are found."""

    name = "config.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from config.accounts.deletion import erase_before_user_delete

        pre_delete.connect(
            erase_before_user_delete,
            sender=get_user_model(),
            dispatch_uid="accounts.erase_before_user_delete",
        )
