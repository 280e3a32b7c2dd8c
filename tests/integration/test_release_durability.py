"""A release survives its worker: a worker process SIGKILLed at each wave boundary (as the
next wave's deployment appears: with one child, then two, already in the release's history)
and started again finishes the release, with exactly one deployment per component: no child
started twice. Each kill costs the lost attempt's timeout (about 10 s: the dead worker's sticky
queue), so the release has the fewest waves that have two boundaries."""

from __future__ import annotations

import functools
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


def _has(component: str, items: list[dict[str, Any]]) -> bool:
    return any(d["component"] == component for d in items)


async def test_a_worker_killed_at_each_wave_boundary_starts_no_second_child(
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
        for wave, component in ((2, "api"), (3, "web")):
            await wait_for(
                lambda: _deployments(system),
                functools.partial(_has, component),
                within=60,
                what=f"the deployment of {component} (wave {wave})",
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
