"""SLOs through the API: bounds refused with their field, a change audited, GET shows the
budgets, and a deployment judged by an SLO the component lacks is refused before it starts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.system import System

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

SLO = {
    "availability": {"objective": 0.999, "window": "30d"},
    "latency": {"objective": 0.99, "threshold": "300ms", "window": "30d"},
}


def spec(name: str = "shop", slo: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "runtime": {"command": ["srv", "{port}"]}}
    if slo is not None:
        body["slo"] = slo
    return body


@pytest.fixture
async def api(make_system: Any) -> System:
    system: System = await make_system(worker=False)
    return system


@pytest.mark.parametrize(
    ("slo", "field"),
    [
        ({"availability": {"objective": 1.0}}, "body.slo.availability.objective"),
        ({"availability": {"objective": 0.999999}}, "body.slo.availability.objective"),
        ({"availability": {"objective": 0.9, "window": "5m"}}, "body.slo.availability.window"),
        ({"latency": {"objective": 0.9, "threshold": "2m"}}, "body.slo.latency.threshold"),
        ({"latency": {"objective": 0.9, "threshold": "1s", "p": 9}}, "body.slo.latency.p"),
        ({"errors": {"objective": 0.9}}, "body.slo.errors"),
    ],
)
async def test_out_of_bounds_slos_are_refused_and_nothing_is_registered(
    api: System, slo: dict[str, Any], field: str
) -> None:
    resp = await api.http.post("/api/v1/components", json=spec(slo=slo), headers=api.auth())
    assert resp.status_code == 422, resp.text
    assert field in [f["field"] for f in resp.json()["error"]["fields"]]
    listed = await api.http.get("/api/v1/components", headers=api.auth())
    assert listed.json() == []


async def test_a_declared_slo_shows_and_its_change_is_audited(api: System) -> None:
    created = await api.http.post("/api/v1/components", json=spec(slo=SLO), headers=api.auth())
    assert created.status_code == 201, created.text
    assert created.json()["slo"]["latency"]["threshold"] == pytest.approx(0.3)
    got = (await api.http.get("/api/v1/components/shop", headers=api.auth())).json()
    assert got["slo"]["availability"] == {"objective": 0.999, "window": 2592000.0}
    assert got["slo_status"] == []  # declared, nothing read yet
    tighter = {"availability": {"objective": 0.9999, "window": "7d"}}
    changed = await api.http.put(
        "/api/v1/components/shop", json=spec(slo=tighter), headers=api.auth()
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["slo"] == {
        "availability": {"objective": 0.9999, "window": 604800.0},
        "latency": None,
    }
    bad = await api.http.put(
        "/api/v1/components/shop",
        json=spec(slo={"availability": {"objective": 2}}),
        headers=api.auth(),
    )
    assert bad.status_code == 422
    audit = await api.http.get("/api/v1/audit", headers=api.auth())
    assert audit.status_code == 200, audit.text
    actions = [e["action"] for e in audit.json() if e["target"] == "shop"]
    assert actions.count("component.replaced") == 1 and "component.created" in actions
    again = (await api.http.get("/api/v1/components/shop", headers=api.auth())).json()
    assert again["slo"]["availability"]["objective"] == 0.9999  # the 422 changed nothing
    removed = await api.http.put("/api/v1/components/shop", json=spec(), headers=api.auth())
    assert removed.json()["slo"] is None
    assert (await api.http.get("/api/v1/components/shop", headers=api.auth())).json()[
        "slo_status"
    ] is None


async def test_slo_burn_rate_without_the_slo_is_refused_with_a_hint(api: System) -> None:
    await api.http.post("/api/v1/components", json=spec("plain"), headers=api.auth())
    await api.http.post(
        "/api/v1/components",
        json=spec("avail", {"availability": {"objective": 0.99}}),
        headers=api.auth(),
    )
    metric = {"name": "slo_burn_rate", "failure_condition": "result > 10"}
    for component, slo, refused in (("plain", None, True), ("avail", "latency", True)):
        m = metric | ({"slo": slo} if slo else {})
        body = {
            "component": component,
            "environment": "dev",
            "version": "v2",
            "strategy": {
                "type": "canary",
                "steps": [{"set_weight": 20}, {"analysis": {"metrics": [m]}}],
            },
        }
        resp = await api.http.post("/api/v1/deployments", json=body, headers=api.auth())
        assert (resp.status_code == 422) is refused, resp.text
        error = resp.json()["error"]
        assert error["fields"] == [
            {
                "field": "body.strategy.steps.1.analysis.metrics.0",
                "message": f"{component} declares no {slo or 'availability'} SLO",
            }
        ]
        assert '"slo"' in error["hint"] and "PUT /api/v1/components" in error["hint"]
    listed = await api.http.get("/api/v1/deployments", headers=api.auth())
    assert listed.json()["total"] == 0, listed.text  # nothing recorded
