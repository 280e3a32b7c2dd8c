"""Environment values are shown to admins only, wherever a deployment's request surfaces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.db.engine import make_engine, sessions
from core.db.tables import RevisionRow, utcnow
from tests.integration.system import System
from tests.integration.test_components_api import DEMO

SECRET = "s3cret-value"


async def test_deployment_env_values_are_shown_to_admins_only(
    make_system: Callable[..., Any],
) -> None:
    # No worker: the deployment stays pending; the revision is written as the worker would.
    system: System = await make_system(worker=False)
    await system.http.post("/api/v1/components", json=DEMO, headers=system.auth())
    body = {
        "component": "demo",
        "environment": "dev",
        "version": "v1",
        "env": {"API_TOKEN": SECRET},
    }
    started = await system.http.post("/api/v1/deployments", json=body, headers=system.auth())
    assert started.status_code == 202, started.text
    dep = started.json()["id"]
    engine = make_engine(system.settings)
    async with sessions(engine)() as session:
        session.add(
            RevisionRow(
                component="demo",
                environment="dev",
                revision=1,
                version="v1",
                env={"API_TOKEN": SECRET},
                replicas=2,
                deployment_id=dep,
                created_at=utcnow(),
            )  # fmt: skip
        )
        await session.commit()
    await engine.dispose()
    revisions = "/api/v1/deployments/revisions?component=demo&environment=dev"
    viewer, operator = await system.key("viewer"), await system.key("operator")
    for key in (viewer, operator):
        shown = await system.http.get(revisions, headers=system.auth(key))
        assert shown.json()[0]["env"] == {"API_TOKEN": "<redacted>"}
        for url in (
            revisions,
            f"/api/v1/deployments/{dep}",
            "/api/v1/deployments",
        ):
            resp = await system.http.get(url, headers=system.auth(key))
            assert resp.status_code == 200 and SECRET not in resp.text, url
    admin = await system.http.get(revisions, headers=system.auth())
    assert admin.json()[0]["env"] == {"API_TOKEN": SECRET}
