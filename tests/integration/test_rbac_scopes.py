"""Every route against scoped callers: API keys and OIDC tokens whose role applies to `demo` in
`staging` only, with and without reading everything.

The routes and what each is about come from the app's OpenAPI document (`x-required-role`,
`x-scope`), so a new route joins the matrix the day it is added. For each route, a caller of the
route's role (at least operator) scoped to the route's kind of target tries an in-scope target
(never refused for scope) and out-of-scope ones, another component and another environment
(refused for scope: always for a route that changes something, and for a read when the caller
may not read everything). Global routes (keys, audit, events, ...) need an unscoped role.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api.openapi import ROLE_EXTENSION
from api.scope_checks import SCOPE_EXTENSION
from cli.demo import demo_spec
from core.models.apikeys import Role
from tests.integration.deploying import ended_deployment_row
from tests.integration.oidc_issuer import AUDIENCE, Issuer, running_issuer
from tests.integration.system import System, api_operations
from tests.support import wait_for

IN = ("demo", "staging")
OUT = (("web", "staging"), ("demo", "production"))
# The scope of a caller, by the shape of target a route needs: a component's definition is
# about every environment, an environment's policy about every component.
SHAPES = {
    "pair": {"components": ["demo"], "environments": ["staging"]},
    "component": {"components": ["demo"], "environments": ["*"]},
    "environment": {"components": ["*"], "environments": ["staging"]},
}
HOURLY = {"intervals": [{"every": "1h"}]}


def _shape(kind: str, write: bool, path: str) -> str:
    if write and (kind == "component" or path == "/api/v1/components"):
        return "component"
    if write and kind == "environment":
        return "environment"
    return "pair"


def _is_scope_refusal(resp: httpx.Response) -> bool:
    return resp.status_code == 403 and "out of the scope" in resp.text


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as (running, _):
        yield running


@pytest.fixture
async def system(make_system: Callable[..., Any], issuer: Issuer) -> System:
    """Group scoped-<role>-<shape> gives <role> over that shape's scope; `everyone` viewer."""
    role_map: dict[str, Any] = {"everyone": "viewer"}
    for role in ("operator", "admin"):
        for shape, scope in SHAPES.items():
            role_map[f"scoped-{role}-{shape}"] = {"role": role, **scope}
    built: System = await make_system(
        noop=True, oidc_issuer=issuer.url, oidc_audience=AUDIENCE, oidc_role_map=role_map
    )
    return built


async def _scoped_key(
    system: System, role: str, shape: str, read_everything: bool, name: str | None = None
) -> str:
    resp = await system.http.post(
        "/api/v1/apikeys",
        json={
            "name": name or f"{role}-{shape}-{'all' if read_everything else 'narrow'}",
            "role": role,
            "scopes": [SHAPES[shape]],
            "read_everything": read_everything,
        },
        headers=system.auth(),
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


async def _targets(system: System) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """Components demo and web; a recorded deployment and a schedule for each target."""
    for name in ("demo", "web"):
        resp = await system.http.post(
            "/api/v1/components", json=demo_spec(name, 1), headers=system.auth()
        )
        assert resp.status_code == 201, resp.text
    deployments, schedules = {}, {}
    app = system.http._transport.app  # type: ignore[attr-defined]
    async with app.state.sessions() as session:
        for component, environment in (IN, *OUT):
            deployment_id = f"scope-{component}-{environment}"
            session.add(
                ended_deployment_row(deployment_id, component, environment, "v1", "rolling")
            )
            deployments[(component, environment)] = deployment_id
        await session.commit()
    for component, environment in (IN, *OUT):
        schedule_id = f"s-{component}-{environment}-{uuid.uuid4().hex[:6]}"
        resp = await system.http.post(
            "/api/v1/schedules",
            json=_schedule(schedule_id, component, environment),
            headers=system.auth(),
        )
        assert resp.status_code == 201, resp.text
        schedules[(component, environment)] = schedule_id
    return deployments, schedules


def _schedule(schedule_id: str | None, component: str, environment: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "deployment",
        "input": {"component": component, "environment": environment, "version": "v2"},
        "spec": HOURLY,
    }
    return body if schedule_id is None else {"id": schedule_id, **body}


def _request(
    method: str,
    path: str,
    kind: str,
    target: tuple[str, str],
    deployments: dict[tuple[str, str], str],
    schedules: dict[tuple[str, str], str],
) -> tuple[str, dict[str, Any] | None]:
    """The URL and body that aim the route at `target`."""
    component, environment = target
    values = {
        "component_id": component,
        "environment": environment,
        "deployment_id": deployments[target],
        "schedule_id": schedules[target],
        "key": "db.pool_size",
        "action": "promote",
    }
    url = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "nothing-here"), path)
    if kind == "component-environment" and "{component_id}" not in path:
        url += f"?component={component}&environment={environment}"
    body: dict[str, Any] | None = None
    scope = {"component": component, "environment": environment}
    if (method, path) == ("POST", "/api/v1/components"):
        body = demo_spec(component, 1)
    elif (method, path) == ("POST", "/api/v1/deployments"):
        body = {"component": component, "environment": environment, "version": "v2"}
    elif (method, path) == ("PUT", "/api/v1/configuration/{key}"):
        body = {"value": 4, "scope": scope}
    elif (method, path) == ("POST", "/api/v1/configuration/{key}/rotate"):
        body = {"value": "s3cret-value", "scope": scope}
    elif (method, path) == ("POST", "/api/v1/schedules"):
        body = _schedule(f"n-{uuid.uuid4().hex[:10]}", component, environment)
    elif (method, path) == ("PUT", "/api/v1/schedules/{schedule_id}"):
        body = _schedule(None, component, environment)
    elif (method, path) == ("POST", "/api/v1/releases"):
        body = {"environment": environment, "components": {component: "v2"}}
    elif (method, path) == ("POST", "/api/v1/analysis/replay"):
        judge = {"metrics": [{"name": "latency", "kind": "latency"}]}
        body = {"deployment_id": deployments[target], "judge": judge}
    elif (method, path) == ("POST", "/api/v1/orchestration/workflows"):
        deployment = {"component": component, "environment": environment, "version": "v2"}
        body = {"type": "deployment", "input": deployment}
    return url, body


async def test_every_route_checks_the_scope_of_keys_and_tokens(
    system: System, issuer: Issuer
) -> None:
    app = system.http._transport.app  # type: ignore[attr-defined]
    schema = app.openapi()
    deployments, schedules = await _targets(system)
    callers: dict[tuple[str, str, bool, str], str] = {}

    async def caller(role: str, shape: str, everything: bool, via: str) -> str:
        """A scoped key or token, made on first use (a key costs an argon2 hash)."""
        if (role, shape, everything, via) not in callers:
            if via == "key":
                made = await _scoped_key(system, role, shape, everything)
            else:
                groups = [f"scoped-{role}-{shape}"] + (["everyone"] if everything else [])
                made = issuer.mint(groups=groups)
            callers[(role, shape, everything, via)] = made
        return callers[(role, shape, everything, via)]

    checked, wrong, routes = 0, [], 0
    for method, path, _ in api_operations(app):
        operation = schema["paths"][path][method.lower()]
        if ROLE_EXTENSION not in operation:  # public, or signed (webhook deliveries)
            continue
        routes += 1
        needed = Role(operation[ROLE_EXTENSION])
        kind = operation[SCOPE_EXTENSION]
        assert "403" in operation["responses"], (method, path)  # documented, viewer routes too
        write = needed is not Role.VIEWER
        role = "admin" if needed is Role.ADMIN else "operator"
        shape = _shape(kind, write, path)
        # Reading everything changes nothing for a route that writes: tried with it only
        # (the harder case: the viewer grant on everything must not let a write through).
        for everything in (True,) if write else (True, False):
            for via in ("key", "token"):
                headers = {"Authorization": f"Bearer {await caller(role, shape, everything, via)}"}
                trials = [(IN, False)] if kind != "global" else [(IN, True)]
                if kind not in ("global", "list"):
                    outs = OUT
                    if "component" in (
                        kind,
                        shape,
                    ):  # one component: its environments do not matter
                        outs = (OUT[0],)
                    elif "environment" in (kind, shape):  # one environment, whatever the component
                        outs = (OUT[1],)
                    trials += [(target, True) for target in outs]
                for target, out in trials:
                    url, body = _request(method, path, kind, target, deployments, schedules)
                    resp = await system.http.request(method, url, json=body, headers=headers)
                    refused = out and (write or not everything or kind == "global")
                    if kind == "global" and not write and everything:
                        refused = False  # reading everything includes the API as a whole
                    checked += 1
                    if _is_scope_refusal(resp) != refused:
                        wrong.append(
                            f"{method} {url} ({kind}) as {role}/{shape}/"
                            f"{'all' if everything else 'narrow'}/{via}: {resp.status_code} "
                            f"{resp.text[:200]}, expected {'403' if refused else 'not 403'}"
                        )
    assert not wrong, "\n".join(wrong)
    print(f"{routes} routes x {len(callers)} scoped callers, in and out of scope: {checked} checks")


async def test_a_key_scoped_to_demo_in_staging(system: System) -> None:
    """Deploys demo to staging; refused demo to production and web to staging, naming the
    scope; its lists (deployments, components, policies, insights) hold only what it may
    read."""
    for name in ("demo", "web"):
        resp = await system.http.post(
            "/api/v1/components", json=demo_spec(name, 1), headers=system.auth()
        )
        assert resp.status_code == 201, resp.text
    key = await _scoped_key(system, "operator", "pair", False, name="ci-demo-staging")
    headers = system.auth(key)

    def deploy(component: str, environment: str) -> Any:
        body = {"component": component, "environment": environment, "version": "v1"}
        return system.http.post("/api/v1/deployments", json=body, headers=headers)

    started = await deploy("demo", "staging")
    assert started.status_code == 202, started.text
    for component, environment in (("demo", "production"), ("web", "staging")):
        refused = await deploy(component, environment)
        assert refused.status_code == 403, refused.text
        message = refused.json()["error"]["message"]
        assert f"component {component} in environment {environment}" in message
        assert "operator on components demo in environments staging" in message
        assert "r2c apikey create" in refused.json()["error"]["hint"]
    admin_started = await system.http.post(
        "/api/v1/deployments",
        json={"component": "web", "environment": "staging", "version": "v1"},
        headers=system.auth(),
    )
    assert admin_started.status_code == 202, admin_started.text

    listed = await system.http.get("/api/v1/deployments", headers=headers)
    assert listed.status_code == 200, listed.text
    seen = {(d["component"], d["environment"]) for d in listed.json()["items"]}
    assert seen == {("demo", "staging")} and listed.json()["total"] == 1
    everything = await system.http.get("/api/v1/deployments", headers=system.auth())
    assert everything.json()["total"] == 2

    components = await system.http.get("/api/v1/components", headers=headers)
    assert [c["name"] for c in components.json()] == ["demo"]
    for environment in ("staging", "production"):
        put = await system.http.put(
            f"/api/v1/policies/{environment}", json={"protected": False}, headers=system.auth()
        )
        assert put.status_code == 200, put.text
    policies = await system.http.get("/api/v1/policies", headers=headers)
    assert [p["environment"] for p in policies.json()] == ["staging"]

    def targets(resp: httpx.Response) -> set[tuple[str, str]]:
        return {(t["component"], t["environment"]) for t in resp.json()["targets"]}

    await wait_for(
        lambda: system.http.get("/api/v1/insights", headers=system.auth()),
        lambda resp: targets(resp) == {("demo", "staging"), ("web", "staging")},
        what="both deployments in the insights",
    )
    insights = await system.http.get("/api/v1/insights", headers=headers)
    assert targets(insights) == {("demo", "staging")}
    keys = await system.http.get("/api/v1/apikeys", headers=system.auth())
    (info,) = [k for k in keys.json() if k["name"] == "ci-demo-staging"]
    assert info["grants"] == [
        {"role": "operator", "components": ["demo"], "environments": ["staging"]}
    ]
    audit = await system.http.get(
        "/api/v1/audit", params={"action": "auth.denied"}, headers=system.auth()
    )
    assert audit.status_code == 200, audit.text
    reasons = [e["detail"].get("reason") for e in audit.json()]
    assert "scope" in reasons
