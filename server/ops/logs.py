"""JSON logs (LANSHOU_LOG_FORMAT=json): one JSON object per line from Lanshou's, Litestar's and
uvicorn's loggers, for a log shipper (Loki, Elasticsearch, journald with a JSON parser).

Every line has time (UTC, ISO 8601), level, logger and message; access lines (logger lanshou.access,
written by server/ops/metrics.RequestMetrics in place of uvicorn's) add method, path, route, status,
duration_ms and client; an exception adds its traceback as `exception`.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
from uvicorn.config import LOGGING_CONFIG

_encoder = msgspec.json.Encoder()
_ACCESS_FIELDS = ("method", "path", "route", "status", "duration_ms", "client")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _ACCESS_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return _encoder.encode(entry).decode()


JSON_FORMATTER: dict[str, Any] = {"()": "server.ops.logs.JsonFormatter"}
# Litestar's own default line, named here because LoggingConfig takes one formatters mapping.
TEXT_FORMAT: dict[str, Any] = {"format": "%(levelname)s - %(asctime)s - %(name)s - %(module)s - %(message)s"}


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's own logging setup, with its formatters made JSON when asked."""
    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        config["formatters"] = {"default": JSON_FORMATTER, "access": JSON_FORMATTER}
    return config
