"""Error budget metrics of the components' SLOs, read from the store at each scrape.

Placeholder: the SLO work of issue 11 fills this in.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry

from core.settings import Settings


def watch_slos(settings: Settings, registry: CollectorRegistry = REGISTRY) -> None:
    """Serve the SLO gauges from `registry` (the API process calls this once)."""
    del settings, registry
