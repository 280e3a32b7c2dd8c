"""Audit scenarios of the events routes (issue 10): one per mutating route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.integration.system import System

Request = tuple[str, str, dict[str, Any] | None]

SCENARIOS: dict[tuple[str, str], Callable[[System], Awaitable[Request]]] = {}
