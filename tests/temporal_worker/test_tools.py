from __future__ import annotations

import dataclasses
import itertools
import json
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from temporalio.testing import ActivityEnvironment

from shop.models import Customer, HelpArticle, Order, OrderStatusChange, OutboxEmail, Refund
from temporal_worker.activities.tools import ToolActivity
from temporal_worker.contracts.tools import ToolOutcome, ToolRequest
from temporal_worker.tools.registry import atool_registry, tool_registry
from temporal_worker.worker import product_ports

EXPECTED_TOOLS = {
    "search_orders": ("read", ["query"]),
    "get_order": ("read", ["order_id"]),
    "search_help": ("read", ["query"]),
    "issue_refund": ("write", ["order_id", "amount", "reason"]),
    "send_email": ("write", ["order_id", "subject", "body"]),
    "change_order_status": ("write", ["order_id", "status"]),
}
JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
WORKFLOW_ID = "conversation-tools-test"
_numbers = itertools.count(92001)
_calls = itertools.count(1)


def assert_json_schema(schema: dict[str, Any], where: str = "parameters") -> None:
    """The subset of JSON Schema that pydantic emits here, checked keyword by keyword."""
    assert isinstance(schema, dict), where
    if "type" in schema:
        assert schema["type"] in JSON_TYPES, where
    for branch in schema.get("anyOf", []):
        assert_json_schema(branch, f"{where}.anyOf")
    if "enum" in schema:
        assert isinstance(schema["enum"], list) and schema["enum"], where
    for key in ("minLength", "maxLength"):
        if key in schema:
            assert isinstance(schema[key], int) and schema[key] >= 0, f"{where}.{key}"
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema:
            assert isinstance(schema[key], int | float), f"{where}.{key}"
    if schema.get("type") == "object":
        properties = schema["properties"]
        assert isinstance(properties, dict)
        assert set(schema.get("required", [])) <= set(properties), where
        for name, sub in properties.items():
            assert_json_schema(sub, f"{where}.{name}")
            assert sub.get("description") or sub.get("enum"), f"{where}.{name} has no description"
    else:
        assert "type" in schema or "anyOf" in schema or "enum" in schema, where


def test_each_tool_is_declared_with_a_valid_openai_schema() -> None:
    tools = tool_registry()
    assert set(tools.names()) >= set(EXPECTED_TOOLS)
    schemas = {s["function"]["name"]: s for s in tools.openai_tools()}
    for name, (kind, required) in EXPECTED_TOOLS.items():
        schema = json.loads(json.dumps(schemas[name]))  # JSON-able, as sent to the model
        assert schema["type"] == "function"
        assert len(schema["function"]["description"]) > 20
        parameters = schema["function"]["parameters"]
        assert parameters["type"] == "object"
        assert parameters["required"] == required
        assert parameters["additionalProperties"] is False
        assert_json_schema(parameters)
        assert tools.get(name).kind == kind

    refund = schemas["issue_refund"]["function"]["parameters"]["properties"]
    assert refund["reason"]["maxLength"] == 500
    as_number = refund["amount"]["anyOf"][0]
    assert (as_number["type"], as_number["exclusiveMinimum"], as_number["maximum"]) == (
        "number",
        0,
        10000,
    )
    status = schemas["change_order_status"]["function"]["parameters"]["properties"]["status"]
    assert status["enum"] == ["paid", "shipped", "delivered", "cancelled"]
    assert tools.get("issue_refund").threshold_argument == "amount"


def test_summaries_describe_the_action_for_a_reviewer() -> None:
    refund_tool, email_tool = tool_registry().get("issue_refund"), tool_registry().get("send_email")
    refund = refund_tool.validate('{"order_id": 1001, "amount": "25", "reason": "Late delivery"}')
    email = email_tool.validate(
        '{"order_id": 1001, "subject": "About your order #1001", "body": "Hello"}'
    )
    assert refund_tool.summarize(refund) == "Refund 25.00 EUR on order #1001"
    assert (
        email_tool.summarize(email) == "Email the customer of order #1001: About your order #1001"
    )


def request(name: str, arguments: dict[str, Any] | str, *, call_id: str = "") -> ToolRequest:
    return ToolRequest(
        conversation_id="c-tools",
        workflow_id=WORKFLOW_ID,
        call_id=call_id or f"call_{next(_calls)}",
        tool=name,
        arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
        requester_id=1,
    )


async def run(
    name: str, arguments: dict[str, Any] | str, *, attempt: int = 1, call_id: str = ""
) -> tuple[ToolOutcome, Any]:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt, activity_type=f"tool.{name}")
    tools = ToolActivity(product_ports(), tools=atool_registry)
    outcome = await env.run(tools.run, request(name, arguments, call_id=call_id), tool_name=name)
    return outcome, json.loads(outcome.content)


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("get_order", "{not json", "invalid arguments for get_order: arguments: Invalid JSON"),
        ("get_order", {"order_id": 0}, "order_id: Input should be greater than 0"),
        ("get_order", {}, "order_id: Field required"),
        ("search_orders", {"query": "ada", "limit": 5}, "limit: Extra inputs are not permitted"),
        ("search_help", {"query": "   "}, "query: String should have at least 1 character"),
        (
            "issue_refund",
            {"order_id": 1001, "amount": "12.345", "reason": "x"},
            "amount: Decimal input should have no more than 2 decimal places",
        ),
        (
            "issue_refund",
            {"order_id": 1001, "amount": 20000, "reason": "x"},
            "amount: Input should be less than or equal to 10000",
        ),
        (
            "change_order_status",
            {"order_id": 1001, "status": "refunded"},
            "status: Input should be 'paid', 'shipped', 'delivered' or 'cancelled'",
        ),
    ],
)
async def test_malformed_arguments_are_answered_not_retried(
    name: str, arguments: dict[str, Any] | str, problem: str
) -> None:
    outcome, content = await run(name, arguments)
    assert outcome.ok is False
    assert problem in content["error"]


async def test_a_request_for_another_tool_is_refused() -> None:
    env = ActivityEnvironment()
    tools = ToolActivity(product_ports(), tools=atool_registry)
    outcome = await env.run(tools.run, request("delete_everything", {}), tool_name="get_order")
    assert outcome.ok is False
    assert "cannot run 'delete_everything'" in json.loads(outcome.content)["error"]


async def test_an_unknown_tool_is_answered_not_retried() -> None:
    env = ActivityEnvironment()
    tools = ToolActivity(product_ports(), tools=atool_registry)
    outcome = await env.run(
        tools.run, request("delete_everything", {}), tool_name="delete_everything"
    )
    assert outcome.ok is False
    assert "no longer available" in json.loads(outcome.content)["error"]


# --- against the test database ------------------------------------------------

db = pytest.mark.django_db(transaction=True)


@sync_to_async
def order_create(*, status: str = "paid", total: str = "100.00") -> Order:
    number = next(_numbers)
    customer = Customer.objects.create(
        name=f"Ada Tester {number}", email=f"ada{number}@test.example"
    )
    return Order.objects.create(
        number=number,
        customer=customer,
        status=status,
        total=Decimal(total),
        items=[{"sku": "T-1", "name": "Test item", "qty": 2, "price": "50.00"}],
    )


@db
async def test_read_tools_answer_from_the_database() -> None:
    order = await order_create(status="shipped", total="100.00")
    await HelpArticle.objects.acreate(
        slug="t-zeppelin", title="Zeppelin tickets", body="Zeppelin tickets are refundable."
    )

    outcome, found = await run("search_orders", {"query": order.customer.email})
    assert outcome.ok
    assert found["count"] == 1
    assert found["orders"][0] | {"created_at": ""} == {
        "number": order.number,
        "status": "shipped",
        "total": "100.00",
        "currency": "EUR",
        "customer": order.customer.name,
        "created_at": "",
    }

    outcome, details = await run("get_order", {"order_id": order.number})
    assert outcome.ok
    assert details["number"] == order.number
    assert details["customer_email"] == order.customer.email
    assert (details["refunded"], details["refundable"]) == ("0.00", "100.00")
    assert details["items"] == [{"sku": "T-1", "name": "Test item", "qty": 2, "price": "50.00"}]

    outcome, help_result = await run("search_help", {"query": "zeppelin tickets"})
    assert outcome.ok
    assert help_result["articles"][0]["slug"] == "t-zeppelin"

    outcome, missing = await run("get_order", {"order_id": 999999})
    assert outcome.ok is False
    assert missing == {"error": "There is no order #999999."}


@db
async def test_write_tools_write_with_the_calls_idempotency_key(mailoutbox: list) -> None:
    order = await order_create(status="paid", total="100.00")

    outcome, refund = await run(
        "issue_refund",
        {"order_id": order.number, "amount": "25.00", "reason": "Late"},
        call_id="call_refund",
    )
    assert outcome.ok
    assert refund["amount"] == "25.00"
    assert (refund["refunded"], refund["refundable"]) == ("25.00", "75.00")
    row = await Refund.objects.aget(pk=refund["refund_id"])
    assert row.idempotency_key == f"{WORKFLOW_ID}:call_refund"
    assert row.conversation_id == "c-tools"

    outcome, email = await run(
        "send_email", {"order_id": order.number, "subject": "Refund", "body": "Done."}
    )
    assert outcome.ok
    assert email["to"] == order.customer.email
    assert [m.to for m in mailoutbox] == [[order.customer.email]]

    outcome, change = await run(
        "change_order_status", {"order_id": order.number, "status": "shipped"}
    )
    assert outcome.ok
    assert (change["from_status"], change["status"]) == ("paid", "shipped")


@db
async def test_a_refund_too_large_is_answered_with_the_reason() -> None:
    order = await order_create(total="30.00")
    outcome, content = await run(
        "issue_refund", {"order_id": order.number, "amount": "45.00", "reason": "Broken"}
    )
    assert outcome.ok is False
    assert "has 30.00 EUR left to refund" in content["error"]
    assert not await Refund.objects.filter(order=order).aexists()


WRITES = {
    "issue_refund": (Refund, {"amount": "25.00", "reason": "Damaged in transit"}),
    "send_email": (OutboxEmail, {"subject": "Sorry", "body": "Your parcel is late."}),
    "change_order_status": (OrderStatusChange, {"status": "shipped"}),
}


@db
@pytest.mark.parametrize("name", list(WRITES))
async def test_a_retry_after_the_write_took_effect_does_not_write_twice(
    name: str, mailoutbox: list
) -> None:
    model, arguments = WRITES[name]
    order = await order_create(status="paid", total="100.00")
    arguments = {"order_id": order.number, **arguments}

    # The first attempt writes; its result is lost (the worker dies before reporting it).
    await run(name, arguments, attempt=1, call_id="call_retried")
    assert await model.objects.filter(order=order).acount() == 1

    outcome, content = await run(name, arguments, attempt=2, call_id="call_retried")

    assert outcome.ok, content
    rows = [row async for row in model.objects.filter(order=order)]
    assert len(rows) == 1
    assert rows[0].idempotency_key == f"{WORKFLOW_ID}:call_retried"
    if name == "issue_refund":
        assert content["refund_id"] == rows[0].pk
        assert content["refunded"] == "25.00"
    if name == "send_email":
        assert len(mailoutbox) == 1
