"""The demo shop's tools: three reads and three writes on orders, refunds, emails and help.

Listed in settings.AGENT_TOOL_MODULES. Writes pass the tool call's idempotency key
to the shop's services, so an activity retried after its write took effect returns
that write instead of repeating it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from asgiref.sync import sync_to_async
from pydantic import BaseModel, ConfigDict, Field

from shop import selectors, services
from shop.models import CURRENCY, HelpArticle, Order, ShopError
from temporal_worker.tools.registry import ToolContext, ToolError, tool

T = TypeVar("T")

OrderId = Annotated[
    int, Field(gt=0, description="The order number the customer quotes, for example 1001.")
]
HELP_BODY_CHARS = 1200


class ToolArguments(BaseModel):
    # Unknown arguments are refused, not ignored: the model learns its mistake.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SearchOrdersArguments(ToolArguments):
    query: str = Field(
        min_length=1,
        max_length=200,
        description="An order number, part of a customer's name or email address, "
        "or a status (pending, paid, shipped, delivered, cancelled, refunded).",
    )


class GetOrderArguments(ToolArguments):
    order_id: OrderId


class SearchHelpArguments(ToolArguments):
    query: str = Field(
        min_length=1,
        max_length=200,
        description="The customer's question or its key words, for example 'return an item'.",
    )


class IssueRefundArguments(ToolArguments):
    order_id: OrderId
    amount: Decimal = Field(
        gt=0,
        le=10000,
        max_digits=7,
        decimal_places=2,
        description=f"The amount to refund in {CURRENCY}, at most two decimal places; "
        "no more than what is left to refund on the order.",
    )
    reason: str = Field(
        min_length=1, max_length=500, description="Why the customer is refunded, in one sentence."
    )


class SendEmailArguments(ToolArguments):
    order_id: OrderId
    subject: str = Field(min_length=1, max_length=200, description="The email's subject line.")
    body: str = Field(
        min_length=1, max_length=5000, description="The email's text, addressed to the customer."
    )


class ChangeOrderStatusArguments(ToolArguments):
    order_id: OrderId
    status: Literal["paid", "shipped", "delivered", "cancelled"] = Field(
        description="The new status. Orders move pending → paid → shipped → delivered; "
        "only a pending order can be cancelled (a paid one is refunded in full instead)."
    )


async def _shop(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run shop code in Django's database thread; a refused request becomes the tool's answer."""
    try:
        return await sync_to_async(fn)(**kwargs)
    except ShopError as err:
        raise ToolError(str(err)) from err


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _order_brief(order: Order) -> dict[str, Any]:
    return {
        "number": order.number,
        "status": order.status,
        "total": _money(order.total),
        "currency": order.currency,
        "customer": order.customer.name,
        "created_at": order.created_at.date().isoformat(),
    }


def _order_details(order: Order) -> dict[str, Any]:
    refunded = selectors.refund_total(order=order)
    refundable = (
        order.total - refunded if order.status in services.REFUNDABLE_STATUSES else Decimal("0.00")
    )
    return {
        "number": order.number,
        "status": order.status,
        "total": _money(order.total),
        "currency": order.currency,
        "customer": order.customer.name,
        "customer_email": order.customer.email,
        "refunded": _money(refunded),
        "refundable": _money(refundable),
        "items": order.items,
        "created_at": order.created_at.date().isoformat(),
    }


def _help_result(article: HelpArticle) -> dict[str, Any]:
    body = article.body
    if len(body) > HELP_BODY_CHARS:
        body = body[: HELP_BODY_CHARS - 1].rstrip() + "…"
    return {"slug": article.slug, "title": article.title, "body": body}


# --- reads --------------------------------------------------------------------


def _search_orders(query: str) -> dict[str, Any]:
    orders = selectors.order_search(query=query)
    return {"query": query, "count": len(orders), "orders": [_order_brief(o) for o in orders]}


@tool(
    name="search_orders",
    description="Find orders by order number, customer name or email, or status. "
    "Returns up to 10 orders, newest first.",
    kind="read",
    summarize=lambda args: f"Search orders for “{args.query}”",
)
async def search_orders(args: SearchOrdersArguments, ctx: ToolContext) -> dict[str, Any]:
    return await _shop(_search_orders, query=args.query)


def _get_order(number: int) -> dict[str, Any]:
    return _order_details(selectors.order_get(number=number))


@tool(
    name="get_order",
    description="Look up one order: status, total, items, customer, and how much has "
    "been refunded and is still refundable.",
    kind="read",
    summarize=lambda args: f"Look up order #{args.order_id}",
)
async def get_order(args: GetOrderArguments, ctx: ToolContext) -> dict[str, Any]:
    return await _shop(_get_order, number=args.order_id)


def _search_help(query: str) -> dict[str, Any]:
    articles = selectors.help_search(query=query)
    result: dict[str, Any] = {"query": query, "articles": [_help_result(a) for a in articles]}
    if not articles:
        result["note"] = "No help article matches; try other words."
    return result


@tool(
    name="search_help",
    description="Search the shop's help articles (returns, refunds, shipping, addresses, "
    "cancelling, warranty, payment, support). Returns the best 3 with their text.",
    kind="read",
    summarize=lambda args: f"Search help for “{args.query}”",
)
async def search_help(args: SearchHelpArguments, ctx: ToolContext) -> dict[str, Any]:
    return await _shop(_search_help, query=args.query)


# --- writes -------------------------------------------------------------------


def _issue_refund(args: IssueRefundArguments, ctx: ToolContext) -> dict[str, Any]:
    refund = services.refund_issue(
        order_number=args.order_id,
        amount=args.amount,
        reason=args.reason,
        idempotency_key=ctx.idempotency_key,
        conversation_id=ctx.conversation_id,
    )
    order = selectors.order_get(number=args.order_id)
    details = _order_details(order)
    return {
        "refund_id": refund.pk,
        "number": order.number,
        "amount": _money(refund.amount),
        "currency": order.currency,
        "order_status": order.status,
        "refunded": details["refunded"],
        "refundable": details["refundable"],
    }


@tool(
    name="issue_refund",
    description=f"Refund money ({CURRENCY}) to the customer of a paid, shipped or delivered "
    "order. Partial refunds are allowed up to what is left; a full refund marks the order "
    "refunded. Needs a reviewer's approval above the policy's threshold.",
    kind="write",
    summarize=lambda args: f"Refund {args.amount:.2f} {CURRENCY} on order #{args.order_id}",
    threshold_argument="amount",
)
async def issue_refund(args: IssueRefundArguments, ctx: ToolContext) -> dict[str, Any]:
    return await _shop(_issue_refund, args=args, ctx=ctx)


def _send_email(args: SendEmailArguments, ctx: ToolContext) -> dict[str, Any]:
    email = services.email_send(
        order_number=args.order_id,
        subject=args.subject,
        body=args.body,
        idempotency_key=ctx.idempotency_key,
        conversation_id=ctx.conversation_id,
    )
    return {
        "email_id": email.pk,
        "number": args.order_id,
        "to": email.to_address,
        "subject": email.subject,
        "sent_at": email.sent_at.isoformat(),
    }


@tool(
    name="send_email",
    description="Email the customer of an order (the address on the order is used). "
    "The email is sent once and kept in the outbox.",
    kind="write",
    summarize=lambda args: f"Email the customer of order #{args.order_id}: {args.subject}",
)
async def send_email(args: SendEmailArguments, ctx: ToolContext) -> dict[str, Any]:
    return await _shop(_send_email, args=args, ctx=ctx)


def _change_order_status(args: ChangeOrderStatusArguments, ctx: ToolContext) -> dict[str, Any]:
    change = services.order_status_change(
        order_number=args.order_id,
        status=args.status,
        idempotency_key=ctx.idempotency_key,
        conversation_id=ctx.conversation_id,
    )
    return {
        "number": args.order_id,
        "from_status": change.from_status,
        "status": change.to_status,
        "changed_at": change.created_at.isoformat(),
    }


@tool(
    name="change_order_status",
    description="Move an order to its next status: pending → paid or cancelled, "
    "paid → shipped, shipped → delivered.",
    kind="write",
    summarize=lambda args: f"Mark order #{args.order_id} as {args.status}",
)
async def change_order_status(args: ChangeOrderStatusArguments, ctx: ToolContext) -> dict[str, Any]:
    return await _shop(_change_order_status, args=args, ctx=ctx)
