"""django-otp-webauthn leaves its admin unregistered: registered here so an admin can
remove a lost passkey (apps and recovery codes have theirs from django-otp). The user
admin gains the export of one person's data."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django_otp_webauthn.admin import WebAuthnCredentialAdmin
from django_otp_webauthn.models import WebAuthnCredential

from chatapp.deletion import user_data_export

admin.site.register(WebAuthnCredential, WebAuthnCredentialAdmin)


@admin.action(description="Export the selected person's data (JSON)", permissions=["change"])
def export_user_data(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> HttpResponse | None:
    """One person's data on request: their account, conversations with every message, and
    the approvals they asked for or decided."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one person to export.", messages.ERROR)
        return None
    user = queryset.get()
    response = HttpResponse(
        json.dumps(user_data_export(user), cls=DjangoJSONEncoder, indent=2),
        content_type="application/json",
    )
    filename = f"user-{user.pk}-data.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class UserAdminWithExport(UserAdmin):
    """Django's user admin, with the data export (deleting a user ends their
    conversations: config.accounts.deletion)."""

    actions = [export_user_data]


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), UserAdminWithExport)
