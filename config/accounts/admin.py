"""django-otp-webauthn leaves its admin unregistered: registered here so an admin can
remove a lost passkey (apps and recovery codes have theirs from django-otp)."""

from django.contrib import admin
from django_otp_webauthn.admin import WebAuthnCredentialAdmin
from django_otp_webauthn.models import WebAuthnCredential

admin.site.register(WebAuthnCredential, WebAuthnCredentialAdmin)
