"""Starter prompts an empty chat offers: a fixed list of what the demo agents can do
(an agent-specific list would be a field of the Agent model)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Starter:
    title: str
    prompt: str


STARTERS: tuple[Starter, ...] = (
    Starter("Track an order", "What is the status of order 1001?"),
    Starter("Returns", "Can you help with returns?"),
    Starter("Ask for a refund", "Please refund 25 on order 1001."),
)
