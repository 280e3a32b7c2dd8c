"""The deployment metrics of a store that does not answer: empty families, a warning, and a
scrape that still succeeds."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from api.deployment_metrics import watch_deployments
from core.settings import Settings


def test_a_store_without_tables_leaves_the_families_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No migration ran: every query fails as a store that is away would.
    (tmp_path / "home").mkdir()
    settings = Settings(home=tmp_path / "home", postgres_url=None)
    registry = CollectorRegistry()
    collector = watch_deployments(settings, registry)
    try:
        with caplog.at_level(logging.WARNING):
            text = generate_latest(registry).decode()
    finally:
        collector.close()
    assert "# TYPE r2c_deployments_total counter" in text
    assert "r2c_deployments_total{" not in text
    assert "r2c_dora_change_failure_ratio{" not in text
    assert "deployments not read for /metrics" in caplog.text
