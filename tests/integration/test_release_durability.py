"""A release survives its worker: a worker process SIGKILLed at a wave boundary (as the last
wave's deployment appears, with two children already in the release's history) and started
again finishes the release, with exactly one deployment per component: no child started
twice. One boundary: every boundary takes the same path (tests/unit/test_release_workflow.py
replays a whole release's history), and each kill costs the lost attempt's timeout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cli.demo import demo_spec
from tests.integration.system import System, retire_instances
from tests.integration.test_deployment_durability import WorkerProcess
from tests.support import wait_for

ORDER = ("db-migrate", "api", "web")


async def _deployments(system: System) -> list[dict[str, Any]]:
    resp = await system.http.get("/api/v1/deployments?limit=100", headers=system.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def test_a_worker_killed_at_a_wave_boundary_starts_no_second_child(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(worker=False)
    for name, needs in zip(ORDER, (None, "db-migrate", "api"), strict=True):
        spec = demo_spec(name, 1)
        spec["runtime"]["health_check"]["interval_seconds"] = 0.5
        if needs:
            spec["depends_on"] = [{"component": needs}]
        resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
        assert resp.status_code == 201, resp.text
    worker = WorkerProcess(system.settings)
    worker.start()
    try:
        body = {"environment": "dev", "components": dict.fromkeys(ORDER, "v1")}
        resp = await system.http.post("/api/v1/releases", json=body, headers=system.auth())
        assert resp.status_code == 202, resp.text
        url = f"/api/v1/releases/{resp.json()['id']}"
        await wait_for(
            lambda: _deployments(system),
            lambda items: any(d["component"] == "web" for d in items),
            within=60,
            what="the deployment of web (wave 3)",
        )
        worker.kill()
        worker.start()

        async def get() -> dict[str, Any]:
            return dict((await system.http.get(url, headers=system.auth())).json())

        done = await wait_for(
            get, lambda r: r["state"] in ("succeeded", "rolled_back", "failed"), within=90
        )
        assert done["state"] == "succeeded", done
        items = await _deployments(system)
        assert sorted(d["component"] for d in items) == sorted(ORDER), items
        assert all(d["state"] == "succeeded" for d in items), items
    finally:
        worker.stop_all()
        await retire_instances(system)
