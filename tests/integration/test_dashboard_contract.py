"""The dashboard keeps its own OpenAPI contract (/ui/openapi.json, api/ui/openapi.py): every
route of the dashboard, taken from the app itself (a new route joins the day it is added),
is walked against the real app by several callers (no session, an admin's, a viewer's, an
operator scoped elsewhere) with good, missing and over-long values, plus the paths only a
flow reaches (an OIDC sign-in, OIDC off, an action that succeeds); every status answered must
be in the document, and every documented status must be answered by the walk, except the few
that need a failing dependency (the store, Temporal, the identity provider) or a flood.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute

from api.ui.openapi import KINDS, ui_routes
from tests.integration.dashboard_browser import CSRF, browser, dashboard_app, signed_in
from tests.integration.deploying import deploy, register_demo, until
from tests.integration.oidc_issuer import AUDIENCE, Issuer, running_issuer
from tests.integration.system import System

HELD = {"type": "canary", "steps": [{"set_weight": 30}, {"pause": {}}, {"set_weight": 100}]}
TOO_LONG = "x" * 5000
# Statuses no walk through a healthy system can provoke: a failing store or Temporal (503,
# 502), a flood of failed sign-ins (429), an identity provider refusing its discovery (401).
NOT_PROVOKED: dict[tuple[str, str], set[int]] = defaultdict(lambda: {429, 502, 503})
NOT_PROVOKED[("GET", "/login/oidc")] = {401, 503}


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as (running, _):
        running.users = {"alice": ["ui-operators"]}
        yield running


@pytest.fixture
async def system(make_system: Callable[..., Any], issuer: Issuer) -> System:
    built: System = await make_system(
        noop=True,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_role_map={"ui-operators": "operator"},
    )
    return built


def _request(
    method: str, path: str, route: APIRoute, values: dict[str, str], csrf: str | None, long: bool
) -> dict[str, Any]:
    """The request aiming `route` at `values`; with `long`, every parameter over any bound."""
    url = "/ui" + path
    for param in route.dependant.path_params:
        url = url.replace("{" + param.name + "}", values.get(param.name, "nothing-here"))
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    request: dict[str, Any] = {"url": url, "headers": headers}
    if long:
        request["params"] = {p.alias: TOO_LONG for p in route.dependant.query_params}
        headers.update({p.alias: TOO_LONG for p in route.dependant.header_params})
        if route.body_field is not None:
            request["data"] = {p.alias: TOO_LONG for p in route.dependant.body_params}
    return request


async def test_every_dashboard_status_is_documented(system: System, issuer: Issuer) -> None:
    ui = dashboard_app(system)
    routes = ui_routes(ui)
    unknown = [f"{m} /ui{p}" for m, p, _ in routes if (m, p) not in KINDS]
    assert not unknown, f"no entry in api/ui/openapi.py KINDS: {unknown}"
    served = await system.http.get("/ui/openapi.json")
    assert served.status_code == 200, served.text
    document = served.json()
    assert document["components"]["securitySchemes"]["session"]["in"] == "cookie"
    documented = {
        (method.upper(), path): {int(s) for s in operation["responses"]}
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert set(documented) == {(m, p) for m, p, _ in routes}

    await register_demo(system, replicas=1)
    done = await until(system, (await deploy(system, "v1"))["id"], "succeeded")
    keys = {
        "admin": system.admin_key,
        "viewer": await system.key("viewer", "contract-viewer"),
        "outsider": await _scoped_operator(system),
    }
    answered: dict[tuple[str, str], set[int]] = defaultdict(set)

    async def probe(
        http: httpx.AsyncClient, method: str, path: str, **request: Any
    ) -> httpx.Response:
        resp = await http.request(method, **request)
        answered[(method, path)].add(resp.status_code)
        return resp

    good = {"deployment_id": done["id"], "action": "promote"}
    variants = (
        (good, False),
        ({**good, "deployment_id": "nothing-here"}, False),
        ({**good, "action": "bogus"}, False),
        (good, True),
    )
    sessions = {caller: await signed_in(system, key) for caller, key in keys.items()}
    for method, path, route in routes:
        # These two end the session they are sent with: each gets a new one.
        ends_session = path in ("/logout", "/login/oidc")
        for caller in (None, *keys):
            sent: set[str] = set()
            for values, long in variants:
                request = _request(method, path, route, values, None, long)
                if repr(request) in sent:  # a route without parameters: one request is enough
                    continue
                sent.add(repr(request))
                if caller is None:
                    http, csrf = browser(system), None
                elif ends_session:
                    http, csrf = await signed_in(system, keys[caller])
                else:
                    http, csrf = sessions[caller]
                request = _request(method, path, route, values, csrf, long)
                await probe(http, method, path, **request)
                if caller is None or ends_session:
                    await http.aclose()
    for http, _ in sessions.values():
        await http.aclose()
    # Every POST: the API's request guard answers an oversized body or a Content-Length that
    # is not a number before the dashboard reads either.
    over = b"x" * (system.settings.max_body_bytes + 1)
    async with browser(system) as http:
        for method, path, route in routes:
            if method == "POST":
                url = _request(method, path, route, good, None, False)["url"]
                await probe(http, method, path, url=url, content=over)
                await probe(http, method, path, url=url, headers={"Content-Length": "abc"})

    # The paths only a flow reaches: sign-ins, OIDC off, actions that succeed.
    async with browser(system) as http:
        token = CSRF.search((await http.get("/ui/login")).text).group(1)  # type: ignore[union-attr]
        form = {"csrf_token": token, "api_key": system.admin_key}
        await probe(http, "POST", "/login/key", url="/ui/login/key", data=form)
    async with browser(system) as http, httpx.AsyncClient() as idp:
        started = await probe(http, "GET", "/login/oidc", url="/ui/login/oidc")
        query = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()}
        answer = await idp.post(f"{issuer.url}/authorize", data={**query, "username": "alice"})
        back = urlsplit(answer.headers["location"]).query
        await probe(http, "GET", "/callback", url=f"/ui/callback?{back}")
    state = ui.state
    settings = state.settings
    state.settings = settings.model_copy(update={"oidc_issuer": None})
    try:
        async with browser(system) as http:
            await probe(http, "GET", "/login/oidc", url="/ui/login/oidc")
    finally:
        state.settings = settings
    action = "/deployments/{deployment_id}/actions/{action}"
    http, csrf = await signed_in(system, system.admin_key)
    try:
        held = await deploy(system, "v2", HELD)
        await until(system, held["id"], "paused")
        promoted = await probe(
            http, "POST", action, url=f"/ui/deployments/{held['id']}/actions/promote",
            headers={"X-CSRF-Token": csrf},
        )  # fmt: skip
        assert promoted.headers["location"] == f"/ui/deployments/{held['id']}"
        await until(system, held["id"], "succeeded")
        held = await deploy(system, "v3", HELD)
        await until(system, held["id"], "paused")
        aborted = await probe(
            http, "POST", action, url=f"/ui/deployments/{held['id']}/actions/abort",
            headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
        )  # fmt: skip
        assert aborted.json() == {"action": "abort", "deployment": held["id"]}
    finally:
        await http.aclose()

    undocumented = {
        f"{m} /ui{p}": sorted(answered[(m, p)] - documented[(m, p)]) for m, p in documented
    }
    assert not any(undocumented.values()), f"answered but not documented: {undocumented}"
    unprovoked = {
        f"{m} /ui{p}": sorted(documented[(m, p)] - answered[(m, p)] - NOT_PROVOKED[(m, p)])
        for m, p in documented
        if not p.startswith("/saml/")  # SAML is off here: its routes answer 404
    }
    assert not any(unprovoked.values()), f"documented but never provoked: {unprovoked}"
    print(
        f"{len(routes)} dashboard routes, {sum(len(s) for s in answered.values())} "
        "(route, status) pairs answered, all documented"
    )


async def _scoped_operator(system: System) -> str:
    """An operator of component web in staging only, reading nothing else."""
    resp = await system.http.post(
        "/api/v1/apikeys",
        json={
            "name": "contract-outsider",
            "role": "operator",
            "scopes": [{"components": ["web"], "environments": ["staging"]}],
            "read_everything": False,
        },
        headers=system.auth(),
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])
