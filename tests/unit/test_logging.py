"""JSON logs: one object per line, with the request id, the trace and span ids, and extras;
and the same as Elastic Common Schema with LOG_FORMAT=ecs."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from core.logging import EcsFormatter, JsonFormatter, request_id_var, setup_logging


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


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("r2c.test", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_line_written_in_a_span_carries_its_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        entry = json.loads(JsonFormatter("api").format(_record()))
        context = span.get_span_context()
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")
    assert len(entry["trace_id"]) == 32 and len(entry["span_id"]) == 16
    # Outside a span, no ids (not zeros).
    outside = json.loads(JsonFormatter("api").format(_record()))
    assert "trace_id" not in outside and "span_id" not in outside


def test_an_ecs_line_has_the_fields_elk_expects() -> None:
    tracer = TracerProvider().get_tracer("test")
    token = request_id_var.set("req-7")
    try:
        with tracer.start_as_current_span("request") as span:
            line = EcsFormatter("worker").format(_record(deployment_id="dep-1"))
            context = span.get_span_context()
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["@timestamp"].endswith("Z")
    assert entry["log.level"] == "info"
    assert entry["message"] == "hello you"
    assert entry["ecs.version"]
    assert entry["service"]["name"] == "worker"
    assert entry["trace"]["id"] == format(context.trace_id, "032x")
    assert entry["span"]["id"] == format(context.span_id, "016x")
    assert entry["http"]["request"]["id"] == "req-7"
    assert entry["deployment_id"] == "dep-1"
    assert "trace" not in json.loads(EcsFormatter("worker").format(_record()))


def test_an_extra_that_collides_with_an_ecs_field_keeps_the_line() -> None:
    # `log` is an ECS object: the library refuses to merge a plain value into it.
    entry = json.loads(EcsFormatter("api").format(_record(log=3, status=201)))
    assert entry["message"] == "hello you"
    assert entry["labels"] == {"log": "3", "status": "201"}
    assert entry["service"]["name"] == "api"


def test_log_format_ecs_makes_every_logger_write_ecs(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", "api", "ecs")
        logging.getLogger("r2c.anything").warning("careful", extra={"target": "demo/dev"})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (entry["log.level"], entry["message"], entry["target"]) == (
        "warning",
        "careful",
        "demo/dev",
    )
    assert entry["log"]["logger"] == "r2c.anything"
