"""Audit scenarios for the `/api/v1/policies` routes: for each mutating route, what to set up
and which request then changes something (see `test_audit_trail.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]

SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {}
