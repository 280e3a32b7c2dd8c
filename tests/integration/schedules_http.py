"""The system with its API also on a real port, for the tests that speak HTTP to it (the
`r2c schedule` commands, schemathesis)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from api.app import create_app
from tests.integration.system import System
from tests.serving import serving


@pytest.fixture
async def served(make_system: Callable[..., Any]) -> AsyncIterator[System]:
    """The system (its worker runs the scheduled health checks), its API also on a real port."""
    system: System = await make_system(noop=True)
    async with serving(create_app(system.settings), system.settings.port):
        yield system
