from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import preferences, views

urlpatterns = [
    path("", include("chatapp.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("config.accounts.urls")),
    path("accounts/passkeys/", include("django_otp_webauthn.urls")),
    path("reviews/", include("reviews.urls")),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("status/", views.service_status, name="service-status"),
    path("preferences/theme/", preferences.theme_update, name="theme-update"),
]
