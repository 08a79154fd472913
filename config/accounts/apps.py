from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """The account pages as an app, so their static files (the passkey script) are found."""

    name = "config.accounts"
    label = "accounts"
    verbose_name = "Accounts"
