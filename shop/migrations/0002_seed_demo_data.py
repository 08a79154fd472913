"""Seed the demo shop: 8 customers, orders #1001-#1020 and 8 help articles.

Fixed data (no randomness, no clock), so demos, tests and screenshots agree.
Safe to apply again: rows are matched on their unique fields and left as they are.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import migrations

CUSTOMERS = [
    ("Alice Martin", "alice.martin@example.com"),
    ("Bruno Keller", "bruno.keller@example.com"),
    ("Chloé Dubois", "chloe.dubois@example.com"),
    ("Dmitri Ivanov", "dmitri.ivanov@example.com"),
    ("Emma Schmidt", "emma.schmidt@example.com"),
    ("Farid Haddad", "farid.haddad@example.com"),
    ("Grace Okafor", "grace.okafor@example.com"),
    ("Hiro Tanaka", "hiro.tanaka@example.com"),
]

PRODUCTS = {
    "KB-01": ("Mechanical keyboard", "89.00"),
    "MS-02": ("Wireless mouse", "24.90"),
    "HP-03": ("Noise-cancelling headphones", "149.00"),
    "CB-04": ("USB-C cable (2 m)", "9.90"),
    "ST-05": ("Laptop stand", "39.50"),
    "WC-06": ("HD webcam", "59.00"),
    "BP-07": ("Laptop backpack", "69.00"),
    "MP-08": ("Desk mat", "19.90"),
    "LM-09": ("Desk lamp", "34.00"),
    "SSD-10": ("Portable SSD 1 TB", "109.00"),
}

# number, customer email, status, [(sku, qty)]
ORDERS = [
    (1001, "alice.martin@example.com", "delivered", [("KB-01", 1), ("MS-02", 1), ("CB-04", 1)]),
    (1002, "bruno.keller@example.com", "shipped", [("HP-03", 1)]),
    (1003, "chloe.dubois@example.com", "paid", [("MP-08", 2)]),
    (1004, "dmitri.ivanov@example.com", "pending", [("SSD-10", 1), ("CB-04", 1)]),
    (1005, "emma.schmidt@example.com", "delivered", [("LM-09", 1)]),
    (1006, "farid.haddad@example.com", "cancelled", [("WC-06", 1)]),
    (1007, "grace.okafor@example.com", "delivered", [("BP-07", 1), ("ST-05", 1)]),
    (1008, "hiro.tanaka@example.com", "refunded", [("MS-02", 1)]),
    (1009, "alice.martin@example.com", "paid", [("HP-03", 1), ("CB-04", 2)]),
    (1010, "bruno.keller@example.com", "pending", [("ST-05", 1)]),
    (1011, "chloe.dubois@example.com", "shipped", [("KB-01", 1)]),
    (1012, "dmitri.ivanov@example.com", "delivered", [("WC-06", 1), ("MP-08", 1)]),
    (1013, "emma.schmidt@example.com", "paid", [("SSD-10", 1)]),
    (1014, "farid.haddad@example.com", "shipped", [("LM-09", 1), ("CB-04", 1)]),
    (1015, "grace.okafor@example.com", "delivered", [("HP-03", 1), ("BP-07", 1)]),
    (1016, "hiro.tanaka@example.com", "pending", [("MS-02", 1), ("MP-08", 1)]),
    (1017, "alice.martin@example.com", "refunded", [("ST-05", 1)]),
    (1018, "bruno.keller@example.com", "cancelled", [("BP-07", 1)]),
    (
        1019,
        "chloe.dubois@example.com",
        "paid",
        [("KB-01", 1), ("MS-02", 1), ("ST-05", 1), ("MP-08", 1)],
    ),
    (1020, "emma.schmidt@example.com", "shipped", [("CB-04", 3)]),
]

# Refunds already on the books: order number -> (amount, reason). None: the whole total.
REFUNDS = {
    1007: (Decimal("10.00"), "Backpack arrived with a scuffed strap; partial refund agreed."),
    1008: (None, "Mouse was faulty on arrival; returned and refunded in full."),
    1017: (None, "Customer returned the stand within 30 days."),
}

FIRST_ORDER_AT = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)

HELP_ARTICLES = [
    (
        "returns",
        "Returning an item",
        "You can return any item within **30 days** of delivery.\n\n"
        "1. Write to support with your order number.\n"
        "2. We email you a prepaid return label.\n"
        "3. Pack the item in its original box and drop it at any parcel shop.\n\n"
        "Once the return arrives we refund the item to your original payment method "
        "(see *Refunds*). Items must be unused and complete.",
    ),
    (
        "refunds",
        "Refunds: how and when you get your money back",
        "Refunds go back to the payment method used for the order, in euros.\n\n"
        "- Only **paid** orders (paid, shipped or delivered) can be refunded; a pending "
        "order is simply cancelled.\n"
        "- Partial refunds are possible, up to the order total.\n"
        "- Cards show the refund within **5-10 business days**; PayPal within 2 days.\n\n"
        "An order refunded in full is marked *refunded*.",
    ),
    (
        "shipping-times",
        "Shipping times and tracking",
        "Orders paid before 14:00 (CET) on a working day leave our warehouse the same day.\n\n"
        "| destination | delivery |\n|---|---|\n"
        "| Germany, Austria | 1-2 working days |\n"
        "| rest of the EU | 2-4 working days |\n"
        "| UK, Switzerland | 3-6 working days |\n\n"
        "When an order ships we email you a tracking link.",
    ),
    (
        "change-address",
        "Changing the delivery address",
        "You can change the delivery address while an order is **pending** or **paid**: "
        "contact support with the order number and the new address.\n\n"
        "Once an order has shipped the address can no longer be changed; ask the carrier "
        "to redirect the parcel using the tracking link.",
    ),
    (
        "cancel-order",
        "Cancelling an order",
        "A **pending** order (not paid yet) can be cancelled at any time.\n\n"
        "A paid order is not cancelled but refunded in full before it ships. After it has "
        "shipped, return it instead (see *Returning an item*).",
    ),
    (
        "warranty",
        "Warranty and faulty items",
        "Every product has a **2-year warranty** from the delivery date.\n\n"
        "If an item is faulty, contact support with the order number, a short description "
        "and a photo if you can. We repair, replace or refund it; you never pay for the "
        "return shipping of a faulty item.",
    ),
    (
        "payment-methods",
        "Payment methods",
        "We accept Visa, Mastercard, American Express, PayPal and SEPA bank transfer.\n\n"
        "Card and PayPal orders are paid at once. Bank transfer orders stay **pending** "
        "until the money arrives (usually 1-2 working days) and are cancelled after 14 days "
        "without payment. All prices are in euros and include VAT.",
    ),
    (
        "contact-support",
        "Contacting support",
        "Our support team answers by email at support@shop.example, Monday to Friday, "
        "9:00-18:00 CET, usually within one working day.\n\n"
        "Always include your **order number** (for example #1001) so that we can find "
        "your order quickly.",
    ),
]


def seed(apps, schema_editor):
    customer_model = apps.get_model("shop", "Customer")
    order_model = apps.get_model("shop", "Order")
    refund_model = apps.get_model("shop", "Refund")
    article_model = apps.get_model("shop", "HelpArticle")

    customers = {}
    for name, email in CUSTOMERS:
        customers[email], _ = customer_model.objects.get_or_create(
            email=email, defaults={"name": name}
        )

    for index, (number, email, status, lines) in enumerate(ORDERS):
        items = [
            {"sku": sku, "name": PRODUCTS[sku][0], "qty": qty, "price": PRODUCTS[sku][1]}
            for sku, qty in lines
        ]
        total = sum((Decimal(item["price"]) * item["qty"] for item in items), Decimal("0.00"))
        order, _ = order_model.objects.get_or_create(
            number=number,
            defaults={
                "customer": customers[email],
                "status": status,
                "total": total,
                "currency": "EUR",
                "items": items,
                "created_at": FIRST_ORDER_AT + timedelta(days=2 * index, hours=index % 5),
            },
        )
        if number in REFUNDS:
            amount, reason = REFUNDS[number]
            refund_model.objects.get_or_create(
                idempotency_key=f"seed:refund:{number}",
                defaults={"order": order, "amount": amount or total, "reason": reason},
            )

    for slug, title, body in HELP_ARTICLES:
        article_model.objects.get_or_create(slug=slug, defaults={"title": title, "body": body})


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    # Going back leaves the rows: 0001's reversal drops the tables anyway.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
