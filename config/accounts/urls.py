from django.urls import path

from config.accounts import views

app_name = "accounts"

urlpatterns = [
    path("verify/", views.verify, name="verify"),
    path("step-up/", views.step_up, name="step-up"),
    path("second-factor/", views.second_factor, name="second-factor"),
    path("second-factor/app/", views.totp_setup, name="totp-setup"),
    path("second-factor/recovery-codes/", views.recovery_codes, name="recovery-codes"),
    path("second-factor/passkey-added/", views.passkey_registered, name="passkey-registered"),
    path("second-factor/remove/", views.device_remove, name="device-remove"),
]
