"""OpenTelemetry tracing for the API, the worker and the router.

Placeholder: the tracing work of issue 11 fills this in.
"""

from __future__ import annotations

from core.settings import Settings


def setup_tracing(process_name: str, settings: Settings) -> None:
    """Configure the global tracer provider from the OTEL_* variables (no exporter: no cost)."""
    del process_name, settings
