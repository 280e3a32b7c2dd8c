"""JSON logs: one object per line, with the request id and extras."""

from __future__ import annotations

import json
import logging

from core.logging import JsonFormatter, request_id_var


def test_one_json_object_per_record_with_request_id() -> None:
    record = logging.LogRecord("r2c.test", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.status = 201
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter("api").format(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "hello you"
    assert (entry["level"], entry["process"], entry["request_id"], entry["status"]) == (
        "info",
        "api",
        "req-1",
        201,
    )
