"""Live events are one typed definition each: every event sent is handled by the
consumers of its audience, every handler has an event, and every event is sent."""

from __future__ import annotations

import ast
import dataclasses
import gc
import inspect
import json
from pathlib import Path

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer

from chatapp.consumers import ConversationConsumer
from reviews.consumers import ReviewersConsumer
from temporal_worker.contracts.events import EVENTS, LiveEvent, handler_name

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("config", "chatapp", "reviews", "shop", "temporal_worker")
CONSUMERS: dict[str, type[AsyncWebsocketConsumer]] = {
    "conversation": ConversationConsumer,
    "reviewers": ReviewersConsumer,
}


def _handlers(consumer: type[AsyncWebsocketConsumer]) -> set[str]:
    """The consumer's own public coroutine methods other than the socket's lifecycle."""
    lifecycle = {"connect", "disconnect", "receive", "websocket_connect", "websocket_receive"}
    return {
        name
        for name, member in vars(consumer).items()
        if inspect.iscoroutinefunction(member)
        and not name.startswith("_")
        and name not in lifecycle
        and not hasattr(AsyncWebsocketConsumer, name)
    }


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_every_event_is_handled_by_each_consumer_of_its_audience(event: type[LiveEvent]) -> None:
    assert event.audiences
    for audience in event.audiences:
        assert handler_name(event) in _handlers(CONSUMERS[audience]), (audience, event.type)


@pytest.mark.parametrize("audience", CONSUMERS)
def test_every_handler_has_an_event_of_its_audience(audience: str) -> None:
    expected = {handler_name(e) for e in EVENTS if audience in e.audiences}
    assert _handlers(CONSUMERS[audience]) == expected


def test_every_event_is_sent_somewhere_in_the_product() -> None:
    constructed: set[str] = set()
    # ast.parse can trip on a collection that logs mid-parse (CPython 3.11.7).
    gc.collect()
    gc.disable()
    try:
        trees = [
            ast.parse(p.read_text()) for package in PRODUCT for p in (ROOT / package).rglob("*.py")
        ]
    finally:
        gc.enable()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                constructed.add(node.func.id)
    assert {e.__name__ for e in EVENTS} - constructed == set()


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_an_event_survives_the_channel_layer_as_plain_data(event: type[LiveEvent]) -> None:
    values = {str: "x", int: 7, bool: True}
    sample = event(**{f.name: values[f.type] for f in dataclasses.fields(event)})  # type: ignore[index]
    message = json.loads(json.dumps(sample.to_message()))
    assert message["type"] == event.type
    assert event.from_message(message) == sample
