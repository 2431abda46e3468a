"""Structured logs: one JSON object per line on stderr, so log shippers need no parsing rules.

Call sites pass their fields as `extra={"fields": {...}}`; the message is the event name.
"""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "info") -> None:
    """Send the `cloud` loggers to stderr as JSON lines (called by the server CLI, not on import)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cloud")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
