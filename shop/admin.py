from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from shop.models import Customer, HelpArticle, Order, OrderStatusChange, OutboxEmail, Refund


class AuditAdmin(admin.ModelAdmin):
    """Rows the agent's tools wrote: read, never added, edited or deleted by hand."""

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class OrderInline(admin.TabularInline):
    model = Order
    fields = ("number", "status", "total", "currency", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    fields = ("amount", "reason", "conversation_id", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class StatusChangeInline(admin.TabularInline):
    model = OrderStatusChange
    fields = ("from_status", "to_status", "conversation_id", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email")
    search_fields = ("name", "email")
    inlines = [OrderInline]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "customer", "status", "total", "currency", "created_at")
    list_filter = ("status", "currency", "created_at")
    search_fields = ("number", "customer__name", "customer__email")
    list_select_related = ("customer",)
    autocomplete_fields = ("customer",)
    date_hierarchy = "created_at"
    inlines = [RefundInline, StatusChangeInline]


@admin.register(Refund)
class RefundAdmin(AuditAdmin):
    list_display = ("order", "amount", "short_reason", "conversation_id", "created_at")
    list_filter = ("created_at",)
    search_fields = ("order__number", "reason", "conversation_id", "idempotency_key")
    list_select_related = ("order",)

    @admin.display(description="reason")
    def short_reason(self, obj: Refund) -> str:
        return obj.reason[:80]


@admin.register(OutboxEmail)
class OutboxEmailAdmin(AuditAdmin):
    list_display = ("sent_at", "to_address", "subject", "order", "conversation_id")
    list_filter = ("sent_at",)
    search_fields = ("to_address", "subject", "body", "order__number", "conversation_id")
    list_select_related = ("order",)
    date_hierarchy = "sent_at"


@admin.register(OrderStatusChange)
class OrderStatusChangeAdmin(AuditAdmin):
    list_display = ("order", "from_status", "to_status", "conversation_id", "created_at")
    list_filter = ("to_status", "from_status", "created_at")
    search_fields = ("order__number", "conversation_id", "idempotency_key")
    list_select_related = ("order",)


@admin.register(HelpArticle)
class HelpArticleAdmin(admin.ModelAdmin):
    list_display = ("title", "slug")
    search_fields = ("title", "slug", "body")
    prepopulated_fields = {"slug": ("title",)}
