"""Reads of the demo shop. Synchronous: async callers wrap them with `sync_to_async`."""

from __future__ import annotations

import re
from decimal import Decimal

from django.db.models import Q, Sum

from shop.models import HelpArticle, Order, OrderStatusChange, OutboxEmail, Refund, ShopError

_WORD_RE = re.compile(r"[\w'-]+")
# Words that would match nearly every article and say nothing about the question.
_STOPWORDS = frozenset(
    "about and are can does for from get have how into its not the this what when where "
    "which who why will with you your".split()
)


class OrderNotFound(ShopError):
    def __init__(self, number: int) -> None:
        super().__init__(f"There is no order #{number}.")
        self.number = number


def order_get(*, number: int) -> Order:
    try:
        return Order.objects.select_related("customer").get(number=number)
    except Order.DoesNotExist as err:
        raise OrderNotFound(number) from err


def order_search(*, query: str, limit: int = 10) -> list[Order]:
    """Orders whose number, status, or customer name or email matches `query`, newest first."""
    text = query.strip()
    if not text:
        return []
    matches = Q(customer__name__icontains=text) | Q(customer__email__icontains=text)
    number = text.lstrip("#").strip()
    if number.isdigit():
        matches |= Q(number=int(number))
    if text.lower() in Order.Status.values:
        matches |= Q(status=text.lower())
    orders = Order.objects.filter(matches).select_related("customer")
    return list(orders.order_by("-created_at", "-number")[:limit])


def refund_total(*, order: Order) -> Decimal:
    total = Refund.objects.filter(order=order).aggregate(total=Sum("amount"))["total"]
    return total if total is not None else Decimal("0.00")


def refund_get_by_key(*, idempotency_key: str) -> Refund | None:
    return Refund.objects.select_related("order").filter(idempotency_key=idempotency_key).first()


def email_get_by_key(*, idempotency_key: str) -> OutboxEmail | None:
    return (
        OutboxEmail.objects.select_related("order").filter(idempotency_key=idempotency_key).first()
    )


def status_change_get_by_key(*, idempotency_key: str) -> OrderStatusChange | None:
    return (
        OrderStatusChange.objects.select_related("order")
        .filter(idempotency_key=idempotency_key)
        .first()
    )


def _search_words(query: str) -> list[str]:
    words = []
    for word in _WORD_RE.findall(query.lower()):
        if len(word) < 3 or word in _STOPWORDS:
            continue
        # "returns" should find "return"; containment does the rest ("refund" finds "refunds").
        stem = word[:-1] if len(word) > 4 and word.endswith("s") else word
        if stem not in words:
            words.append(stem)
    return words


def help_search(*, query: str, limit: int = 3) -> list[HelpArticle]:
    """Articles ranked by how many of the query's words they contain; title hits break ties."""
    words = _search_words(query)
    if not words:
        return []
    candidates = Q()
    for word in words:
        candidates |= Q(title__icontains=word) | Q(body__icontains=word)
    ranked = []
    for article in HelpArticle.objects.filter(candidates):
        title, body = article.title.lower(), article.body.lower()
        found = sum(1 for w in words if w in title or w in body)
        in_title = sum(1 for w in words if w in title)
        ranked.append((-found, -in_title, article.slug, article))
    ranked.sort(key=lambda row: row[:3])
    return [row[3] for row in ranked[:limit]]
