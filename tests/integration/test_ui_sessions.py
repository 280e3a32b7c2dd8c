"""The dashboard's sign-in, sessions and CSRF protection, over HTTP against the real app, its
store and (for OIDC) the test issuer: what a browser would get, cookie by cookie."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from core.db.tables import utcnow
from core.db.ui_sessions_tables import UiSessionRow
from tests.integration.deploying import deploy, register_demo, until
from tests.integration.oidc_issuer import AUDIENCE, Issuer, running_issuer
from tests.integration.system import System

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as (running, _):
        running.users = {"alice": ["ui-operators"], "victor": ["ui-viewers"]}
        yield running


@pytest.fixture
async def system(make_system: Callable[..., Any], issuer: Issuer) -> System:
    built: System = await make_system(
        noop=True,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_role_map={"ui-operators": "operator", "ui-viewers": "viewer"},
    )
    return built


def browser(system: System) -> httpx.AsyncClient:
    """A client of its own (its own cookie jar), as one browser."""
    return httpx.AsyncClient(transport=system.http._transport, base_url="http://api")


async def csrf_of(http: httpx.AsyncClient, path: str) -> str:
    resp = await http.get(path)
    assert resp.status_code == 200, resp.text
    found = CSRF.search(resp.text)
    assert found, resp.text
    return found.group(1)


async def sign_in_with_key(http: httpx.AsyncClient, key: str) -> httpx.Response:
    token = await csrf_of(http, "/ui/login")
    return await http.post(
        "/ui/login/key", data={"csrf_token": token, "api_key": key, "next": "/ui/components"}
    )


async def actions(system: System, action: str) -> list[dict[str, Any]]:
    resp = await system.http.get(f"/api/v1/audit?action={action}", headers=system.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json())


async def test_key_sign_in_sessions_roles_and_csrf(system: System) -> None:
    await register_demo(system, replicas=1)
    done = await until(system, (await deploy(system, "v1"))["id"], "succeeded")
    viewer_key = await system.key("viewer", "ui-viewer")
    async with browser(system) as http:
        # Not signed in: to the sign-in page, and back where it was going afterwards.
        resp = await http.get("/ui/deployments?component=demo")
        assert resp.status_code == 303
        assert resp.headers["location"].startswith("/ui/login?next=/ui/deployments")
        page = await http.get("/ui/login")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "same-origin"
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/ui" in cookie
        before = http.cookies["r2c_session"]

        # The sign-in form without its CSRF token: 403, not signed in.
        refused = await http.post("/ui/login/key", data={"api_key": viewer_key})
        assert refused.status_code == 403
        bad = await sign_in_with_key(http, "r2c_0123456789ab_not-a-key")
        assert bad.status_code == 401

        signed = await sign_in_with_key(http, viewer_key)
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/components"
        after = http.cookies["r2c_session"]
        assert after != before  # a new session at sign-in: a planted id is worth nothing
        components = await http.get("/ui/components")
        assert components.status_code == 200 and "apikey:ui-viewer (viewer)" in components.text
        assert "demo" in components.text and "v1" in components.text

        # The store keeps the id's hash, never the id or the key.
        async with system.http._transport.app.state.sessions() as db:  # type: ignore[attr-defined]
            rows = (await db.execute(select(UiSessionRow))).scalars().all()
        hashes = {r.id_hash for r in rows}
        assert hashlib.sha256(after.encode()).hexdigest() in hashes
        assert all(after not in str(r.data) and viewer_key not in str(r.data) for r in rows)

        # A viewer: the page shows no action buttons, and a forged POST is refused anyway.
        page = await http.get(f"/ui/deployments/{done['id']}")
        assert page.status_code == 200 and 'id="action-' not in page.text
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        forged = await http.post(
            f"/ui/deployments/{done['id']}/actions/rollback", data={"csrf_token": token}
        )
        assert forged.status_code == 403
        assert any(e["actor"] == "apikey:ui-viewer" for e in await actions(system, "auth.denied"))

        listing = await http.get("/ui/deployments?state=succeeded&component=demo")
        assert done["id"] in listing.text
        assert done["id"] not in (await http.get("/ui/deployments?state=failed")).text

        # Sign out: audited, and the old cookie signs nobody in.
        token = await csrf_of(http, "/ui/components")
        out = await http.post("/ui/logout", data={"csrf_token": token})
        assert out.status_code == 303
        http.cookies.set("r2c_session", after, domain="api", path="/ui")
        assert (await http.get("/ui/components")).status_code == 303
    signed_in = await actions(system, "ui.signed_in")
    assert [e["actor"] for e in signed_in] == ["apikey:ui-viewer"]
    assert [e["actor"] for e in await actions(system, "ui.signed_out")] == ["apikey:ui-viewer"]


async def test_an_operator_acts_and_sessions_end_with_their_key_or_idle(system: System) -> None:
    await register_demo(system, replicas=1)
    await until(system, (await deploy(system, "v1"))["id"], "succeeded")
    done = await until(system, (await deploy(system, "v2"))["id"], "succeeded")
    operator_key = await system.key("operator", "ui-operator")
    async with browser(system) as http:
        assert (await sign_in_with_key(http, operator_key)).status_code == 303
        page = await http.get(f"/ui/deployments/{done['id']}")
        assert 'id="action-rollback"' in page.text
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        # No token, a header token of another value: 403. The header (as fetch sends it): ok.
        path = f"/ui/deployments/{done['id']}/actions/rollback"
        assert (await http.post(path)).status_code == 403
        assert (await http.post(path, headers={"X-CSRF-Token": "x" * 43})).status_code == 403
        rolled = await http.post(
            path, headers={"X-CSRF-Token": token, "Accept": "application/json"}
        )
        assert rolled.status_code == 200, rolled.text
        back = rolled.json()["deployment"]
        assert back != done["id"]
        assert (await until(system, back, "succeeded"))["rollback_of"] == done["id"]
        rollbacks = await actions(system, "deployment.rollback")
        assert [e["actor"] for e in rollbacks] == ["apikey:ui-operator"]

        # Idle past R2C_UI_SESSION_IDLE_MINUTES: signed out.
        app = system.http._transport.app  # type: ignore[attr-defined]
        async with app.state.sessions() as db:
            await db.execute(update(UiSessionRow).values(seen_at=utcnow() - timedelta(hours=1)))
            await db.commit()
        assert (await http.get("/ui/components")).status_code == 303

        # Revoking the key ends its sessions at once.
        assert (await sign_in_with_key(http, operator_key)).status_code == 303
        assert (await http.get("/ui/components")).status_code == 200
        revoked = await system.http.delete("/api/v1/apikeys/ui-operator", headers=system.auth())
        assert revoked.status_code == 200
        assert (await http.get("/ui/components")).status_code == 303


async def test_oidc_sign_in_with_pkce_maps_groups_to_the_role(
    system: System, issuer: Issuer
) -> None:
    async with browser(system) as http, httpx.AsyncClient() as idp:
        started = await http.get("/ui/login/oidc?next=/ui/components")
        assert started.status_code == 302
        to = urlsplit(started.headers["location"])
        query = {k: v[0] for k, v in parse_qs(to.query).items()}
        assert f"{to.scheme}://{to.netloc}{to.path}" == f"{issuer.url}/authorize"
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert query["redirect_uri"] == "http://api/ui/callback"
        # The person signs in at the issuer, which sends the browser back with a code.
        answer = await idp.post(f"{issuer.url}/authorize", data={**query, "username": "alice"})
        assert answer.status_code == 302
        back = urlsplit(answer.headers["location"])
        code = parse_qs(back.query)["code"][0]

        # Another state than this browser's: refused.
        wrong = await http.get(f"/ui/callback?code={code}&state=not-the-state")
        assert wrong.status_code == 401
        done = await http.get(f"/ui/callback?{back.query}")
        assert done.status_code == 303 and done.headers["location"] == "/ui/components"
        page = await http.get("/ui/components")
        assert "oidc:alice (operator)" in page.text
        # A code works once.
        assert (await http.get(f"/ui/callback?{back.query}")).status_code == 401
    assert [e["actor"] for e in await actions(system, "ui.signed_in")] == ["oidc:alice"]
