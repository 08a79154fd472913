"""The demo warehouse: a small MCP server the second demo agent's tools come from.

    python -m shop.mcp_server --data var/warehouse.sqlite3            # stdio (the worker starts it)
    python -m shop.mcp_server --data ... --http 127.0.0.1:8766         # Streamable HTTP

Two reads (`check_stock`, `list_reservations`, annotated `readOnlyHint`, so they run
freely) and one write (`reserve_stock`, which asks a reviewer by default). A reservation
is kept under the idempotency key the agent chat sends in each call's `_meta`, so a call
repeated after a broken connection returns the first reservation instead of reserving
twice; that is why the demo server is registered as idempotent.

It is a process of its own, written with the official `mcp` SDK only: no Django, its own
SQLite file.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

IDEMPOTENCY_META_KEY = "idempotencyKey"

# sku: (name, units on the shelf before any reservation); the demo shop's products.
SHELF: dict[str, tuple[str, int]] = {
    "KB-01": ("Mechanical keyboard", 14),
    "MS-02": ("Wireless mouse", 40),
    "HP-03": ("Noise-cancelling headphones", 6),
    "CB-04": ("USB-C cable", 120),
    "ST-05": ("Laptop stand", 9),
    "WC-06": ("Webcam", 0),
    "BP-07": ("Laptop backpack", 11),
    "MP-08": ("Desk mat", 25),
    "LM-09": ("Desk lamp", 3),
    "SSD-10": ("Portable SSD 1 TB", 17),
}

Sku = Annotated[str, Field(pattern=r"^[A-Z]{1,6}-\d{1,4}$", description="A SKU, e.g. KB-01.")]
OrderId = Annotated[int, Field(gt=0, description="The shop order the units are for.")]

server = MCPServer(
    "warehouse",
    title="Warehouse",
    instructions="Stock levels and reservations of the demo shop's warehouse.",
    log_level="WARNING",
)
_data_path = Path("var/warehouse.sqlite3")


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    _data_path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(_data_path, timeout=10)
    try:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS reservation ("
            " id INTEGER PRIMARY KEY, idempotency_key TEXT UNIQUE, sku TEXT NOT NULL,"
            " quantity INTEGER NOT NULL, order_id INTEGER NOT NULL)"
        )
        with connection:
            yield connection
    finally:
        connection.close()


def _available(connection: sqlite3.Connection, sku: str) -> int:
    reserved = connection.execute(
        "SELECT COALESCE(SUM(quantity), 0) FROM reservation WHERE sku = ?", (sku,)
    ).fetchone()[0]
    return SHELF[sku][1] - int(reserved)


def _known(sku: str) -> str:
    if sku not in SHELF:
        raise ToolError(f"unknown SKU {sku}; known: {', '.join(sorted(SHELF))}")
    return sku


@server.tool(annotations=ToolAnnotations(title="Check stock", read_only_hint=True))
def check_stock(sku: Sku) -> dict[str, Any]:
    """How many units of a product the warehouse can still reserve."""
    with _db() as connection:
        return {
            "sku": _known(sku),
            "name": SHELF[sku][0],
            "available": _available(connection, sku),
        }


@server.tool(annotations=ToolAnnotations(title="List reservations", read_only_hint=True))
def list_reservations(order_id: OrderId) -> dict[str, Any]:
    """The units reserved for an order."""
    with _db() as connection:
        rows = connection.execute(
            "SELECT id, sku, quantity FROM reservation WHERE order_id = ? ORDER BY id",
            (order_id,),
        ).fetchall()
    return {
        "order_id": order_id,
        "reservations": [{"reservation_id": r[0], "sku": r[1], "quantity": r[2]} for r in rows],
    }


@server.tool(
    annotations=ToolAnnotations(
        title="Reserve stock", read_only_hint=False, destructive_hint=False, idempotent_hint=True
    )
)
def reserve_stock(
    sku: Sku,
    quantity: Annotated[int, Field(ge=1, le=50, description="Units to reserve, 1 to 50.")],
    order_id: OrderId,
    ctx: Context,
) -> dict[str, Any]:
    """Set units of a product aside for an order (they are no longer available to others)."""
    meta = ctx.request_context.meta or {}
    key = str(meta.get(IDEMPOTENCY_META_KEY) or "") or None
    with _db() as connection:
        if key is not None:
            earlier = connection.execute(
                "SELECT id, sku, quantity, order_id FROM reservation WHERE idempotency_key = ?",
                (key,),
            ).fetchone()
            if earlier is not None:
                return _reservation(earlier, connection, repeated=True)
        available = _available(connection, _known(sku))
        if quantity > available:
            raise ToolError(f"only {available} units of {sku} are available")
        cursor = connection.execute(
            "INSERT INTO reservation (idempotency_key, sku, quantity, order_id) VALUES (?,?,?,?)",
            (key, sku, quantity, order_id),
        )
        row = (cursor.lastrowid, sku, quantity, order_id)
        return _reservation(row, connection, repeated=False)


def _reservation(row: Any, connection: sqlite3.Connection, *, repeated: bool) -> dict[str, Any]:
    reservation_id, sku, quantity, order_id = row
    return {
        "reservation_id": reservation_id,
        "sku": sku,
        "quantity": quantity,
        "order_id": order_id,
        "available_after": _available(connection, sku),
        "repeated_call": repeated,
    }


def main(argv: list[str] | None = None) -> None:
    global _data_path
    parser = argparse.ArgumentParser(description="The demo warehouse MCP server.")
    parser.add_argument("--data", default=str(_data_path), help="its SQLite file")
    parser.add_argument("--http", metavar="HOST:PORT", help="serve Streamable HTTP, not stdio")
    options = parser.parse_args(argv)
    _data_path = Path(options.data)
    if options.http:
        host, _, port = options.http.rpartition(":")
        server.run("streamable-http", host=host or "127.0.0.1", port=int(port))
    else:
        server.run()


if __name__ == "__main__":
    main()
