"""`python -m temporal_worker.scripted_model`: run the scripted model server until signalled.

Configured by its command line only (`manage.py serve` passes the settings
SCRIPTED_MODEL_PORT, SCRIPTED_MODEL_CHUNK_DELAY_MS and SCRIPTED_MODEL_FIRST_TOKEN_DELAY_MS).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .server import start_scripted_model

logger = logging.getLogger("temporal_worker.scripted_model")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m temporal_worker.scripted_model",
        description="Deterministic OpenAI-compatible scripted model server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--chunk-delay-ms",
        type=int,
        default=15,
        help="pause between streamed chunks",
    )
    parser.add_argument(
        "--first-token-delay-ms",
        type=int,
        default=0,
        help="pause before the first streamed token",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await start_scripted_model(
        host=args.host,
        port=args.port,
        chunk_delay_ms=args.chunk_delay_ms,
        first_token_delay_ms=args.first_token_delay_ms,
    )
    logger.info("scripted model listening on %s", server.base_url)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
