"""Tracing changes no workflow command: every committed history replays with Temporal's tracing
interceptor on the worker, as a worker with tracing on replays a deployment in flight (one
started before tracing was turned on, say), and the replay makes no span."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from core.codec import EncryptionCodec
from core.payload_keys import PayloadKeyFile
from tests.unit.test_replay import FOLDER, HISTORIES, history
from workers.registry import WORKFLOWS


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_with_the_tracing_interceptor(path: Path) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    codec = EncryptionCodec(PayloadKeyFile(FOLDER))
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=dataclasses.replace(pydantic_data_converter, payload_codec=codec),
        interceptors=[TracingInterceptor(provider.get_tracer("test"))],
    )
    result = await replayer.replay_workflow(history(path), raise_on_replay_failure=True)
    assert result.replay_failure is None
    assert spans.get_finished_spans() == ()
