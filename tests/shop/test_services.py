from __future__ import annotations

import importlib
import itertools
import smtplib
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from shop import selectors, services
from shop.models import (
    Customer,
    HelpArticle,
    Order,
    OrderStatusChange,
    OutboxEmail,
    Refund,
    ShopError,
)
from shop.selectors import OrderNotFound

pytestmark = pytest.mark.django_db

# Far from the seeded #1001-#1020, so these tests never depend on the seed's state.
_numbers = itertools.count(91001)


def order_create(*, status: str = "paid", total: str = "100.00", name: str = "") -> Order:
    number = next(_numbers)
    customer = Customer.objects.create(
        name=name or f"Test Customer {number}", email=f"customer{number}@test.example"
    )
    return Order.objects.create(
        number=number,
        customer=customer,
        status=status,
        total=Decimal(total),
        items=[{"sku": "T-1", "name": "Test item", "qty": 1, "price": total}],
    )


def refund(order: Order, amount: str, key: str) -> Refund:
    return services.refund_issue(
        order_number=order.number, amount=Decimal(amount), reason="Damaged", idempotency_key=key
    )


# --- refunds ------------------------------------------------------------------


def test_refund_with_the_same_key_twice_writes_one_row() -> None:
    order = order_create(total="100.00")

    first = refund(order, "25.00", "wf-1:call-1")
    second = refund(order, "25.00", "wf-1:call-1")

    assert first.pk == second.pk
    assert Refund.objects.filter(order=order).count() == 1
    assert selectors.refund_total(order=order) == Decimal("25.00")
    order.refresh_from_db()
    assert order.status == "paid"


def test_refund_in_full_marks_the_order_refunded_and_a_retry_still_answers() -> None:
    order = order_create(status="delivered", total="80.00")
    refund(order, "30.00", "k-1")

    last = refund(order, "50.00", "k-2")
    retried = refund(order, "50.00", "k-2")

    order.refresh_from_db()
    assert order.status == "refunded"
    assert retried.pk == last.pk
    assert selectors.refund_total(order=order) == Decimal("80.00")


def test_refund_more_than_what_is_left_is_refused_with_the_amount_left() -> None:
    order = order_create(total="100.00")
    refund(order, "60.00", "k-1")

    with pytest.raises(ShopError, match=r"has 40\.00 EUR left to refund"):
        refund(order, "40.01", "k-2")
    assert Refund.objects.filter(order=order).count() == 1


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "more than 0"),
        ("-5.00", "more than 0"),
        ("10.005", "two decimal places"),
    ],
)
def test_refund_amount_is_validated(amount: str, message: str) -> None:
    order = order_create()
    with pytest.raises(ShopError, match=message):
        refund(order, amount, "k")
    assert not Refund.objects.filter(order=order).exists()


@pytest.mark.parametrize("status", ["pending", "cancelled"])
def test_refund_of_an_unpaid_order_is_refused(status: str) -> None:
    order = order_create(status=status)
    with pytest.raises(ShopError, match=rf"is {status}; only paid orders are refunded"):
        refund(order, "10.00", "k")


def test_refund_needs_a_reason_and_a_known_order() -> None:
    order = order_create()
    with pytest.raises(ShopError, match="needs a reason"):
        services.refund_issue(
            order_number=order.number, amount=Decimal("1"), reason="  ", idempotency_key="k"
        )
    with pytest.raises(OrderNotFound, match="There is no order #999999"):
        services.refund_issue(
            order_number=999999, amount=Decimal("1"), reason="x", idempotency_key="k"
        )


def test_a_key_reused_for_a_different_refund_is_refused() -> None:
    order = order_create()
    refund(order, "10.00", "k")
    with pytest.raises(ShopError, match="already used for a different refund"):
        refund(order, "11.00", "k")


def _lookup_missing_once(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """The first lookup misses, as when another attempt writes between lookup and insert."""
    real = getattr(services, name)
    calls: list[str] = []

    def lookup(*, idempotency_key: str) -> object:
        calls.append(idempotency_key)
        return None if len(calls) == 1 else real(idempotency_key=idempotency_key)

    monkeypatch.setattr(services, name, lookup)
    return calls


def test_refund_race_on_the_unique_key_returns_the_winners_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order = order_create(total="100.00")
    winner = refund(order, "25.00", "race")
    calls = _lookup_missing_once(monkeypatch, "refund_get_by_key")

    loser = refund(order, "25.00", "race")

    assert calls == ["race", "race"]  # missed, hit the unique constraint, read again
    assert loser.pk == winner.pk
    assert Refund.objects.filter(order=order).count() == 1


# --- emails -------------------------------------------------------------------


def test_email_with_the_same_key_twice_sends_once(mailoutbox: list) -> None:
    order = order_create(name="Dana Scully")
    kwargs = {
        "order_number": order.number,
        "subject": "Your refund",
        "body": "We refunded 25.00 EUR.",
        "idempotency_key": "wf-2:call-1",
        "conversation_id": "c-1",
    }

    first = services.email_send(**kwargs)
    second = services.email_send(**kwargs)

    assert first.pk == second.pk
    assert OutboxEmail.objects.count() == 1
    assert len(mailoutbox) == 1
    sent = mailoutbox[0]
    assert sent.to == [order.customer.email]
    assert (sent.subject, sent.body) == ("Your refund", "We refunded 25.00 EUR.")
    assert first.to_address == order.customer.email
    assert first.conversation_id == "c-1"


def test_email_race_on_the_unique_key_does_not_send_again(
    monkeypatch: pytest.MonkeyPatch, mailoutbox: list
) -> None:
    order = order_create()
    kwargs = {"order_number": order.number, "subject": "Hi", "body": "Text", "idempotency_key": "r"}
    winner = services.email_send(**kwargs)
    _lookup_missing_once(monkeypatch, "email_get_by_key")

    loser = services.email_send(**kwargs)

    assert loser.pk == winner.pk
    assert len(mailoutbox) == 1


def test_a_failed_send_keeps_no_row_so_the_retry_sends(
    monkeypatch: pytest.MonkeyPatch, mailoutbox: list
) -> None:
    order = order_create()
    kwargs = {"order_number": order.number, "subject": "Hi", "body": "Text", "idempotency_key": "f"}

    def unreachable(*args: object, **kwargs: object) -> int:
        raise smtplib.SMTPServerDisconnected("connection lost")

    with monkeypatch.context() as patch:
        patch.setattr(services, "send_mail", unreachable)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            services.email_send(**kwargs)
    assert not OutboxEmail.objects.exists()

    services.email_send(**kwargs)
    assert OutboxEmail.objects.count() == 1
    assert len(mailoutbox) == 1


def test_email_subject_is_kept_on_one_line_and_needs_a_body() -> None:
    order = order_create()
    email = services.email_send(
        order_number=order.number, subject="Hello\nBcc: x@y.z", body="Hi", idempotency_key="s"
    )
    assert email.subject == "Hello Bcc: x@y.z"
    with pytest.raises(ShopError, match="needs a subject and a body"):
        services.email_send(order_number=order.number, subject="Hi", body=" ", idempotency_key="s2")


# --- status changes -----------------------------------------------------------


def test_an_order_moves_along_its_lifecycle_once_per_key() -> None:
    order = order_create(status="pending")
    for index, status in enumerate(["paid", "shipped", "delivered"]):
        change = services.order_status_change(
            order_number=order.number, status=status, idempotency_key=f"k-{index}"
        )
        again = services.order_status_change(
            order_number=order.number, status=status, idempotency_key=f"k-{index}"
        )
        assert again.pk == change.pk
    order.refresh_from_db()
    assert order.status == "delivered"
    changes = OrderStatusChange.objects.filter(order=order).order_by("created_at", "pk")
    assert [(c.from_status, c.to_status) for c in changes] == [
        ("pending", "paid"),
        ("paid", "shipped"),
        ("shipped", "delivered"),
    ]


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        ("delivered", "shipped", r"cannot go from delivered to shipped \(.*: nothing\)"),
        ("paid", "cancelled", "is paid: refund it in full instead of cancelling it"),
        ("shipped", "shipped", "is already shipped"),
        ("paid", "refunded", "becomes refunded by refunding it in full"),
        ("pending", "lost", "Unknown order status 'lost'"),
    ],
)
def test_disallowed_status_changes_are_refused(current: str, target: str, message: str) -> None:
    order = order_create(status=current)
    with pytest.raises(ShopError, match=message):
        services.order_status_change(order_number=order.number, status=target, idempotency_key="k")
    order.refresh_from_db()
    assert order.status == current
    assert not OrderStatusChange.objects.filter(order=order).exists()


# --- selectors ----------------------------------------------------------------


def test_order_search_matches_number_customer_and_status() -> None:
    order = order_create(status="shipped", name="Fox Mulder")

    assert selectors.order_search(query=f"#{order.number}") == [order]
    assert selectors.order_search(query="fox mul") == [order]
    assert selectors.order_search(query=order.customer.email.upper()) == [order]
    assert order in selectors.order_search(query="Shipped", limit=100)
    assert selectors.order_search(query="   ") == []


def test_help_search_ranks_by_words_found() -> None:
    HelpArticle.objects.create(slug="t-one", title="Zeppelin rides", body="Book a ride.")
    HelpArticle.objects.create(
        slug="t-two", title="Zeppelin parking", body="Zeppelin rides end at the hangar."
    )

    results = selectors.help_search(query="How do I park after zeppelin rides?")

    assert [a.slug for a in results[:2]] == ["t-two", "t-one"]
    assert selectors.help_search(query="how do I") == []


def test_the_seed_migration_fills_the_demo_shop() -> None:
    # Run the migration's own function: a transactional test elsewhere may have flushed
    # the rows it wrote when the test database was created. It leaves existing rows alone.
    seed_migration = importlib.import_module("shop.migrations.0002_seed_demo_data")
    state = MigrationExecutor(connection).loader.project_state(("shop", "0001_initial"))
    seed_migration.seed(state.apps, None)
    seed_migration.seed(state.apps, None)

    assert Customer.objects.filter(email__endswith="@example.com").count() == 8
    seeded = Order.objects.filter(number__range=(1001, 1020))
    assert seeded.count() == 20
    assert seeded.filter(total__gt=100).count() >= 5
    assert set(seeded.values_list("status", flat=True)) == set(Order.Status.values)
    first = Order.objects.get(number=1001)
    assert (first.status, first.total, first.currency) == ("delivered", Decimal("123.80"), "EUR")
    assert sum(Decimal(i["price"]) * i["qty"] for i in first.items) == first.total
    for number in (1008, 1017):
        refunded = Order.objects.get(number=number)
        assert selectors.refund_total(order=refunded) == refunded.total
    assert HelpArticle.objects.count() >= 8
    assert selectors.help_search(query="refunds")[0].slug == "refunds"
    assert selectors.help_search(query="how long does shipping take")[0].slug == "shipping-times"
    assert selectors.help_search(query="change my delivery address")[0].slug == "change-address"
