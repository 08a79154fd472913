"""Log formatting: plain lines for people, JSON lines for log collectors (`LOG_FORMAT=json`).

Both formatters replace every configured secret (the Django secret key, API keys, the
database and Redis passwords) with "[redacted]" wherever it would appear in a line,
tracebacks included. Message bodies are kept out of logs by the code that logs (it
logs ids, never text) and by pinning chatty libraries that log request bodies at
DEBUG (openai, httpx) to WARNING in settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"
# Shorter values are too likely to occur by chance in ordinary text.
MIN_SECRET_LENGTH = 6

# Attributes every LogRecord has; anything else was passed with `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime"}


def _secrets(values: Iterable[str] | None) -> tuple[str, ...]:
    # Longest first, so a secret containing another is replaced whole.
    unique = {v for v in values or () if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
    return tuple(sorted(unique, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class ExpectedOutcomes(logging.Filter):
    """A refusal is an outcome, not a fault: a 4xx answer (403, 404, ...) is logged as its
    one line, without the traceback Django attaches to the exception behind it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500 and record.name.startswith("django."):
            record.exc_info = None
            record.exc_text = None
        return True


class PlainFormatter(logging.Formatter):
    """The stdlib formatter, with secrets redacted."""

    def __init__(self, *args: Any, redact: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secrets = _secrets(redact)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, pid, then any `extra=` fields
    (Temporal's activity and workflow loggers add their ids this way), then exc."""

    def __init__(self, *args: Any, redact: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A secret with quotes or backslashes appears escaped inside a JSON string.
        raw = _secrets(redact)
        self.secrets = _secrets([*raw, *(json.dumps(s, ensure_ascii=False)[1:-1] for s in raw)])

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, default=str, ensure_ascii=False)
        return redact(line, self.secrets)
