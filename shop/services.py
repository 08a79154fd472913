"""Writes of the demo shop: refunds, customer emails and order status changes.

Each write is keyed by the caller's idempotency key, which the database holds
unique. A retried call finds the row its earlier attempt wrote and returns it
without writing (or emailing) again; two attempts racing past that lookup meet
at the unique constraint, and the loser re-reads the winner's row.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction

from shop.models import Order, OrderStatusChange, OutboxEmail, Refund, ShopError
from shop.selectors import (
    OrderNotFound,
    email_get_by_key,
    refund_get_by_key,
    refund_total,
    status_change_get_by_key,
)

Status = Order.Status
CENT = Decimal("0.01")
REFUNDABLE_STATUSES = frozenset({Status.PAID, Status.SHIPPED, Status.DELIVERED, Status.REFUNDED})
# Refunds, not status changes, move an order to "refunded"; a paid order is
# refunded in full rather than cancelled, so no money is left behind.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.PAID, Status.CANCELLED}),
    Status.PAID: frozenset({Status.SHIPPED}),
    Status.SHIPPED: frozenset({Status.DELIVERED}),
    Status.DELIVERED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.REFUNDED: frozenset(),
}

Row = TypeVar("Row", bound=models.Model)


def _once(
    *,
    idempotency_key: str,
    lookup: Callable[..., Row | None],
    check: Callable[[Row], None],
    write: Callable[[], Row],
) -> Row:
    """Run `write` unless a row with this key exists; `check` refuses a key reused elsewhere."""
    if not idempotency_key:
        raise ValueError("an idempotency key is required")
    existing = lookup(idempotency_key=idempotency_key)
    if existing is None:
        try:
            with transaction.atomic():
                return write()
        except IntegrityError:
            existing = lookup(idempotency_key=idempotency_key)
            if existing is None:
                raise
    check(existing)
    return existing


def _order_locked(number: int) -> Order:
    # Locks the order row (PostgreSQL) so concurrent refunds see each other's totals.
    order = Order.objects.select_for_update().select_related("customer").filter(number=number)
    found = order.first()
    if found is None:
        raise OrderNotFound(number)
    return found


def _key_reused(kind: str) -> ShopError:
    return ShopError(f"This request's idempotency key was already used for a different {kind}.")


def refund_issue(
    *,
    order_number: int,
    amount: Decimal,
    reason: str,
    idempotency_key: str,
    conversation_id: str = "",
) -> Refund:
    """Refund part or all of a paid order; the order becomes "refunded" once nothing is left."""
    amount = Decimal(amount)
    reason = reason.strip()
    if not amount.is_finite() or amount <= 0:
        raise ShopError("A refund amount must be more than 0.")
    if amount != amount.quantize(CENT):
        raise ShopError("A refund amount has at most two decimal places.")
    if not reason:
        raise ShopError("A refund needs a reason.")

    def check(refund: Refund) -> None:
        if refund.order.number != order_number or refund.amount != amount:
            raise _key_reused("refund")

    def write() -> Refund:
        order = _order_locked(order_number)
        if order.status not in REFUNDABLE_STATUSES:
            raise ShopError(
                f"Order #{order.number} is {order.status}; only paid orders are refunded."
            )
        remaining = order.total - refund_total(order=order)
        if remaining <= 0:
            raise ShopError(f"Order #{order.number} is already refunded in full.")
        if amount > remaining:
            raise ShopError(
                f"Order #{order.number} has {remaining} {order.currency} left to refund "
                f"(total {order.total}); {amount} {order.currency} is more than that."
            )
        refund = Refund.objects.create(
            order=order,
            amount=amount,
            reason=reason[:500],
            idempotency_key=idempotency_key,
            conversation_id=conversation_id,
        )
        if amount == remaining and order.status != Status.REFUNDED:
            order.status = Status.REFUNDED
            order.save(update_fields=["status"])
        return refund

    return _once(
        idempotency_key=idempotency_key, lookup=refund_get_by_key, check=check, write=write
    )


def email_send(
    *,
    order_number: int,
    subject: str,
    body: str,
    idempotency_key: str,
    conversation_id: str = "",
) -> OutboxEmail:
    """Email the order's customer through EMAIL_BACKEND and keep a copy in the outbox."""
    # A header cannot hold a line break (Django refuses it): keep the subject on one line.
    subject = " ".join(subject.split())[:200]
    body = body.strip()
    if not subject or not body:
        raise ShopError("An email needs a subject and a body.")

    def check(email: OutboxEmail) -> None:
        if email.order is None or email.order.number != order_number or email.subject != subject:
            raise _key_reused("email")

    def write() -> OutboxEmail:
        order = _order_locked(order_number)
        # The row is written before the mail goes out, in one transaction: a concurrent
        # attempt with the same key blocks on the unique index and then fails instead of
        # sending, and a failed send rolls the row back so that the retry sends.
        email = OutboxEmail.objects.create(
            to_address=order.customer.email,
            subject=subject,
            body=body,
            order=order,
            idempotency_key=idempotency_key,
            conversation_id=conversation_id,
        )
        send_mail(email.subject, email.body, None, [email.to_address], fail_silently=False)
        return email

    return _once(idempotency_key=idempotency_key, lookup=email_get_by_key, check=check, write=write)


def _transition_refused(order: Order, status: str) -> ShopError:
    if order.status == status:
        return ShopError(f"Order #{order.number} is already {status}.")
    if status == Status.REFUNDED:
        return ShopError(f"Order #{order.number} becomes refunded by refunding it in full.")
    if order.status == Status.PAID and status == Status.CANCELLED:
        return ShopError(
            f"Order #{order.number} is paid: refund it in full instead of cancelling it."
        )
    allowed = ", ".join(sorted(STATUS_TRANSITIONS[order.status])) or "nothing"
    return ShopError(
        f"Order #{order.number} cannot go from {order.status} to {status} "
        f"(from {order.status} it can go to: {allowed})."
    )


def order_status_change(
    *,
    order_number: int,
    status: str,
    idempotency_key: str,
    conversation_id: str = "",
) -> OrderStatusChange:
    """Move an order along pending → paid → shipped → delivered, or cancel a pending one."""
    if status not in Status.values:
        raise ShopError(f"Unknown order status {status!r}; one of: {', '.join(Status.values)}.")

    def check(change: OrderStatusChange) -> None:
        if change.order.number != order_number or change.to_status != status:
            raise _key_reused("status change")

    def write() -> OrderStatusChange:
        order = _order_locked(order_number)
        if status not in STATUS_TRANSITIONS[order.status]:
            raise _transition_refused(order, status)
        change = OrderStatusChange.objects.create(
            order=order,
            from_status=order.status,
            to_status=status,
            idempotency_key=idempotency_key,
            conversation_id=conversation_id,
        )
        order.status = status
        order.save(update_fields=["status"])
        return change

    return _once(
        idempotency_key=idempotency_key, lookup=status_change_get_by_key, check=check, write=write
    )
