"""Logs on stdout, one JSON object per line, carrying the request id when there is one and the
trace and span ids when there is a current span (so a line leads to its trace in Jaeger).

Two shapes: `json`, our own compact lines, and `ecs` (`LOG_FORMAT=ecs`), Elastic Common Schema
for ELK. Either way the application only writes lines: a shipper (the compose stack's Filebeat)
carries them to Elasticsearch, the application never talks to it (docs/logs.md).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import ecs_logging
from opentelemetry import trace

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

LogFormat = Literal["json", "ecs"]

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def current_trace_ids() -> tuple[str, str] | None:
    """The W3C hex trace and span ids of the current span, or None outside a valid span.

    Cheap without tracing: the API's default span is the invalid one, found by one context
    lookup."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_") and key != "color_message"
    }


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, request id, trace
    and span ids, extras."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self._process = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self._process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        ids = current_trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class EcsFormatter(ecs_logging.StdlibFormatter):
    """Elastic Common Schema lines: `@timestamp`, `log.level`, `message`, `ecs.version`,
    `service.name` (the process), `trace.id`/`span.id` in a span, `http.request.id`, extras."""

    def __init__(self, process_name: str) -> None:
        super().__init__(extra={"service.name": process_name})
        self._process = process_name

    def format_to_ecs(self, record: logging.LogRecord) -> dict[str, Any]:
        try:
            result = super().format_to_ecs(record)
        except (ValueError, TypeError):
            # An extra whose name collides with an ECS object (`extra={"log": 1}`): the line
            # is still written, its extras kept as labels rather than lost with the line.
            result = self._plain(record)
        ids = current_trace_ids()
        if ids is not None:
            result["trace"] = {"id": ids[0]}
            result["span"] = {"id": ids[1]}
        request_id = request_id_var.get()
        if request_id:
            http = result.get("http")
            http = http if isinstance(http, dict) else {}
            http["request"] = {**http.get("request", {}), "id": request_id}
            result["http"] = http
        return result

    def _plain(self, record: logging.LogRecord) -> dict[str, Any]:
        return {
            "@timestamp": self._record_timestamp(record),
            "ecs.version": ecs_logging.ECS_VERSION,
            "log": {"level": record.levelname.lower(), "logger": record.name},
            "message": record.getMessage(),
            "service": {"name": self._process},
            "labels": {k: str(v) for k, v in _extras(record).items() if k != "message"},
        }


def formatter(fmt: LogFormat, process_name: str) -> logging.Formatter:
    """The formatter of `LOG_FORMAT`."""
    return EcsFormatter(process_name) if fmt == "ecs" else JsonFormatter(process_name)


def setup_logging(level: str, process_name: str, fmt: LogFormat = "json") -> None:
    """Route every logger to one handler on stdout (called once per process)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter(fmt, process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that are chatty at INFO; their warnings still come through.
    for noisy in ("httpx", "httpcore", "alembic.runtime.migration", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
