"""/health, /ready, and the answers when Temporal or the store is down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from api.app import create_app
from cli.processes import free_port
from core.settings import Settings
from tests.integration.system import System


async def test_health_and_ready(system: System) -> None:
    assert (await system.http.get("/health")).json() == {"status": "ok"}
    ready = await system.http.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["dependencies"] == {"store": "ok", "temporal": "ok"}


async def test_temporal_down_is_503_never_500(make_system: Callable[..., Any]) -> None:
    system: System = await make_system(worker=False, temporal_address=f"127.0.0.1:{free_port()}")
    ready = await system.http.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["dependencies"]["store"] == "ok"
    assert ready.json()["dependencies"]["temporal"].startswith("unreachable")
    assert "temporal" in ready.json()["message"]
    for method, url, body in (
        ("POST", "/api/v1/orchestration/workflows", {"type": "component-health-check"}),
        ("GET", "/api/v1/orchestration/workflows/x", None),
        ("GET", "/api/v1/orchestration/workflows", None),
        ("DELETE", "/api/v1/orchestration/workflows/x", None),
    ):
        resp = await system.http.request(method, url, json=body, headers=system.auth())
        assert resp.status_code == 503, (method, url, resp.text)
        assert "Temporal" in resp.json()["error"]["message"]
    # Reads and writes of the store still work while Temporal is down.
    assert (await system.http.get("/api/v1/components", headers=system.auth())).status_code == 200


async def test_metrics_count_requests_and_starts(system: System) -> None:
    from prometheus_client import REGISTRY

    def starts() -> float:
        value = REGISTRY.get_sample_value(
            "r2c_workflow_starts_total", {"type": "component-health-check", "outcome": "created"}
        )
        return value or 0.0

    before = starts()
    await system.start()
    assert starts() == before + 1
    requests = REGISTRY.get_sample_value(
        "r2c_http_requests_total",
        {"route": "/api/v1/orchestration/workflows", "method": "POST", "status": "202"},
    )
    assert requests and requests >= 1


async def test_ready_names_the_failing_store_without_its_connection_details(
    make_settings: Callable[..., Settings],
) -> None:
    port = free_port()
    url = f"postgresql://secret-user:hunter2@127.0.0.1:{port}/secret-db"
    app = create_app(make_settings(postgres_url=url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        ready = await http.get("/ready")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "dependencies": {"store": "unreachable", "temporal": "ok"},
        "message": "not reachable: store",
    }
    for detail in ("secret-user", "hunter2", "secret-db", str(port), "127.0.0.1"):
        assert detail not in ready.text
