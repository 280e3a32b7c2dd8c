"""The deployment page's chart data: error rate and p95 latency per version over the
deployment's time, from router metrics a real Prometheus scraped (here from a stand-in router
admin endpoint whose counters grow at every scrape: v2 answers one request in ten with a 5xx)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.infrastructure.local.router.metrics import RouterMetrics
from tests.integration.deploying import register_demo
from tests.integration.prometheus_fixture import running_prometheus
from tests.integration.system import System
from tests.integration.test_ui_sessions import browser, sign_in_with_key
from tests.support import wait_for


@pytest.fixture
def router_admin() -> Iterator[str]:
    """host:port of a /metrics in the router's format; each scrape adds 100 requests a version."""
    metrics = RouterMetrics("demo", "dev")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:
            with lock:
                for i in range(100):
                    metrics.observe("v1", 200, 0.004)
                    metrics.observe("v2", 500 if i % 10 == 0 else 200, 0.04)
                body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_the_chart_has_error_rate_and_latency_per_version(
    make_system: Callable[..., Any], router_admin: str, tmp_path: Path
) -> None:
    async with (
        httpx.AsyncClient() as http,
        running_prometheus(tmp_path / "prometheus", [router_admin], http) as prometheus,
    ):
        system: System = await make_system(worker=False, prometheus_url=prometheus.url)
        await register_demo(system, replicas=1)
        # No worker: the deployment stays recorded as started, its time running on.
        started = await system.http.post(
            "/api/v1/deployments",
            json={"component": "demo", "environment": "dev", "version": "v2"},
            headers=system.auth(),
        )
        assert started.status_code == 202, started.text
        async with browser(system) as page:
            assert (await sign_in_with_key(page, system.admin_key)).status_code == 303
            url = f"/ui/deployments/{started.json()['id']}/traffic"

            async def chart() -> dict[str, Any]:
                resp = await page.get(url)
                assert resp.status_code == 200, resp.text
                body: dict[str, Any] = resp.json()
                return body

            def complete(body: dict[str, Any]) -> bool:
                versions = body["versions"]
                return all(
                    versions.get(v, {}).get("error_rate") and versions[v].get("latency_ms")
                    for v in ("v1", "v2")
                )

            found = await wait_for(chart, complete, within=20, what="both versions charted")
            assert found["source"] == "prometheus" and found["error"] is None
            v1, v2 = found["versions"]["v1"], found["versions"]["v2"]
            assert abs(v2["error_rate"][-1][1] - 0.1) < 0.02
            assert v1["error_rate"][-1][1] == 0
            assert v2["latency_ms"][-1][1] > v1["latency_ms"][-1][1]
            # Someone else's session cannot read it; no session is sent to sign in.
            async with browser(system) as stranger:
                assert (await stranger.get(url)).status_code == 303
