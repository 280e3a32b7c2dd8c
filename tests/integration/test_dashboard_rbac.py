"""The RBAC sweep of the dashboard: every route of /ui, taken from the app itself, has a rule
here (a new route without one fails the test), and each is tried by the callers its rule is
about, as the API's sweep (test_rbac.py, test_rbac_scopes.py) tries the API's routes.

- Every action (each POST on a deployment, each action the route accepts) is refused, 403,
  to a viewer's session, to an operator's whose scope excludes the target, without the CSRF
  token, and with another session's token; the deployment is unchanged and each refusal is in
  the audit trail as `auth.denied`, like the API's.
- The other POSTs (sign-in, sign-out) are refused without the token or with another session's.
- The pages and data (GETs) show a scoped person only what is in their scope: the lists leave
  the rest out, a deployment out of scope (its page, stream and chart data) is a 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

import httpx
import pytest

from api.ui.openapi import ui_routes
from api.ui.pages import UiAction
from cli.demo import demo_spec
from tests.integration.dashboard_browser import browser, dashboard_app, signed_in
from tests.integration.deploying import deploy, get, until
from tests.integration.system import System

HELD = {"type": "canary", "steps": [{"set_weight": 30}, {"pause": {}}, {"set_weight": 100}]}
Rule = Literal["action", "csrf-only", "identity-provider", "public", "list", "deployment"]
RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/deployments/{deployment_id}/actions/{action}"): "action",
    ("POST", "/login/key"): "csrf-only",  # anyone may try to sign in, with the form's token
    ("POST", "/logout"): "csrf-only",
    # The identity provider's POST: the IdP's signature and the pending request's id
    # (InResponseTo) stand in for a CSRF token (tests/integration/test_dashboard_saml.py).
    ("POST", "/saml/acs"): "identity-provider",
    ("GET", "/openapi.json"): "public",
    ("GET", "/"): "public",
    ("GET", "/login"): "public",
    ("GET", "/login/oidc"): "public",
    ("GET", "/callback"): "public",
    ("GET", "/saml/login"): "public",
    ("GET", "/saml/metadata"): "public",
    ("GET", "/components"): "list",
    ("GET", "/deployments"): "list",
    ("GET", "/deployments/{deployment_id}"): "deployment",
    ("GET", "/deployments/{deployment_id}/events"): "deployment",
    ("GET", "/deployments/{deployment_id}/traffic"): "deployment",
}


@pytest.fixture
async def system(make_system: Callable[..., Any]) -> System:
    # Every refusal of the sweep is audited (the default limit would leave some out).
    built: System = await make_system(noop=True, audit_auth_failures_per_minute=1000)
    return built


async def _denied(system: System) -> list[dict[str, Any]]:
    resp = await system.http.get(
        "/api/v1/audit", params={"action": "auth.denied", "limit": 500}, headers=system.auth()
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json())


async def _operator_of_web(system: System) -> str:
    """An operator of component web (every environment), reading nothing else."""
    resp = await system.http.post(
        "/api/v1/apikeys",
        json={
            "name": "rbac-ui-web",
            "role": "operator",
            "scopes": [{"components": ["web"], "environments": ["*"]}],
            "read_everything": False,
        },
        headers=system.auth(),
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


async def test_every_dashboard_route_checks_role_scope_and_csrf(system: System) -> None:
    routes = ui_routes(dashboard_app(system))
    unknown = [f"{m} /ui{p}" for m, p, _ in routes if (m, p) not in RULES]
    assert not unknown, f"dashboard routes without an RBAC rule in this test: {unknown}"

    for name in ("demo", "web"):
        resp = await system.http.post(
            "/api/v1/components", json=demo_spec(name, 1), headers=system.auth()
        )
        assert resp.status_code == 201, resp.text
    web = await deploy(system, "v1", component="web")
    first = await deploy(system, "v1")
    await until(system, web["id"], "succeeded")
    await until(system, first["id"], "succeeded")
    held = await deploy(system, "v2", HELD)  # demo in dev, held at 30% until promoted
    before = await until(system, held["id"], "paused")

    viewer, viewer_csrf = await signed_in(system, await system.key("viewer", "rbac-ui-viewer"))
    scoped, scoped_csrf = await signed_in(system, await _operator_of_web(system))
    admin, admin_csrf = await signed_in(system, system.admin_key)
    denied_before = len(await _denied(system))
    refusals, checked, wrong = 0, 0, []

    def expect(ok: bool, what: str, resp: httpx.Response) -> None:
        nonlocal checked
        checked += 1
        if not ok:
            wrong.append(f"{what}: {resp.status_code} {resp.text[:200]}")

    try:
        for method, path, _ in routes:
            rule = RULES[(method, path)]
            if rule == "action":
                for action in get_args(UiAction):
                    url = "/ui" + path.format(deployment_id=held["id"], action=action)
                    tries = (
                        ("viewer", viewer, {"X-CSRF-Token": viewer_csrf}, "needs the operator"),
                        ("scoped", scoped, {"X-CSRF-Token": scoped_csrf}, "out of the scope"),
                        ("no token", admin, {}, "CSRF"),
                        ("other's token", admin, {"X-CSRF-Token": viewer_csrf}, "CSRF"),
                    )
                    for who, http, headers, says in tries:
                        resp = await http.post(url, headers=headers)
                        refusals += 1
                        ok = resp.status_code == 403 and says in resp.text
                        expect(ok, f"{action} as {who}", resp)
                        now = await get(system, held["id"])
                        expect(now == before, f"{action} as {who} changed the deployment", resp)
            elif rule == "csrf-only":
                url = "/ui" + path
                for who, headers in (("no token", {}), ("other's", {"X-CSRF-Token": viewer_csrf})):
                    resp = await admin.post(url, headers=headers)
                    refusals += 1
                    expect(resp.status_code == 403, f"{method} {url} with {who} token", resp)
            elif rule == "deployment":
                for who, http in (("scoped", scoped), ("viewer", viewer)):
                    for target, may in ((web, True), (held, who == "viewer")):
                        url = "/ui" + path.format(deployment_id=target["id"])
                        if path.endswith("/events") and may and target is held:
                            continue  # a running deployment's stream does not end
                        resp = await http.get(url)
                        refusals += not may
                        ok = resp.status_code == 200 if may else resp.status_code == 403
                        expect(ok, f"GET {url} as {who}", resp)
            elif rule == "list":
                url = "/ui" + path
                seen = await scoped.get(url)
                everything = await viewer.get(url)
                names = ("web", "demo") if path == "/components" else (web["id"], held["id"])
                expect(
                    seen.status_code == 200 and names[0] in seen.text and names[1] not in seen.text,
                    f"GET {url} as scoped shows only its scope",
                    seen,
                )
                expect(all(n in everything.text for n in names), f"GET {url} as viewer", seen)
            elif rule == "public":
                async with browser(system) as anonymous:
                    resp = await anonymous.get("/ui" + path)
                # No role or scope to check (a failed sign-in may still be a 401).
                expect(resp.status_code != 403, f"GET /ui{path} anonymously", resp)
    finally:
        for http in (viewer, scoped, admin):
            await http.aclose()
    assert not wrong, "\n".join(wrong)

    # Each refusal is in the audit trail, by whom and why.
    denied = await _denied(system)
    assert len(denied) - denied_before == refusals, [e["detail"] for e in denied]
    reasons = {(e["actor"], e["detail"].get("reason")) for e in denied}
    assert ("apikey:rbac-ui-viewer", "role") in reasons
    assert ("apikey:rbac-ui-web", "scope") in reasons
    assert any(reason == "csrf" for _, reason in reasons), reasons
    print(f"{len(routes)} dashboard routes, {checked} checks, {refusals} refusals audited")
