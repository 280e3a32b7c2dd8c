"""SAML 2.0 sign-in to the dashboard against a real IdP (tests/integration/saml_idp.py, pysaml2
with xmlsec1 on both sides): the person signs in at the IdP and reaches /ui with the role of
their groups; each forged, foreign, expired or replayed answer is refused with the error page
and signs nobody in; with SAML off its routes are 404 and the sign-in page has no button."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from starlette.requests import Request

from api.ui import saml_state
from core.db.ui_sessions_tables import UiSessionRow
from tests.integration.deploying import deploy, register_demo, until
from tests.integration.redis_fixture import RedisServer, redis_server_fixture  # noqa: F401
from tests.integration.saml_idp import Idp, Variant, form_of, key_and_certificate, running_idp
from tests.integration.system import System

MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
ENTITY_ID = "http://api/ui/saml/metadata"
ACS = "http://api/ui/saml/acs"
ERROR = re.compile(r'<p role="alert" id="error">([^<]*)</p>')


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[Idp]:
    with running_idp(tmp_path) as running:
        running.users = {
            "alice": ["staff", "ui-operators"],
            "victor": ["ui-viewers"],
            "nora": ["staff"],  # in no group of the role map
        }
        yield running


@pytest.fixture
async def system(make_system: Callable[..., Any], idp: Idp, tmp_path: Path) -> System:
    key, cert = key_and_certificate(tmp_path, "sp")
    built: System = await make_system(
        noop=True,
        ui_public_url="http://api",
        ui_saml_idp_metadata=idp.metadata_url,
        ui_saml_sp_key_file=key,
        ui_saml_sp_cert_file=cert,
        ui_saml_role_map={"ui-operators": "operator", "ui-viewers": "viewer"},
    )
    return built


def browser(system: System) -> httpx.AsyncClient:
    """A client of its own (its own cookie jar), as one browser."""
    return httpx.AsyncClient(transport=system.http._transport, base_url="http://api")


async def start(http: httpx.AsyncClient, idp: Idp, next_path: str, *, signed: bool = True) -> str:
    """Begin a SAML sign-in: the AuthnRequest (HTTP-Redirect) the browser carries to the IdP."""
    resp = await http.get(f"/ui/saml/login?next={next_path}")
    assert resp.status_code == 303, resp.text
    to = urlsplit(resp.headers["location"])
    assert f"{to.scheme}://{to.netloc}{to.path}" == f"{idp.url}/sso"
    query = {k: v[0] for k, v in parse_qs(to.query).items()}
    assert ("Signature" in query) == signed  # signed with our key when we have one
    return query["SAMLRequest"]


async def at_idp(idp: Idp, saml_request: str, user: str) -> dict[str, str]:
    """The person signs in at the IdP (over HTTP); the IdP's auto-submitting answer form."""
    async with httpx.AsyncClient(base_url=idp.url) as http:
        page = await http.get("/sso", params={"SAMLRequest": saml_request})
        assert 'name="user"' in page.text
        answer = await http.post("/sso", data={"SAMLRequest": saml_request, "user": user})
        assert answer.status_code == 200, answer.text
    action, fields = form_of(answer.text)
    assert action == ACS
    return fields


async def refused(http: httpx.AsyncClient, fields: dict[str, str], says: str) -> None:
    """The answer is refused with the error page, and the browser is not signed in."""
    resp = await http.post("/ui/saml/acs", data=fields)
    assert resp.status_code == 401, resp.text
    message = ERROR.search(resp.text)
    assert message and says in html.unescape(message.group(1)), resp.text
    assert "r2c_session" not in resp.headers.get("set-cookie", "")
    assert (await http.get("/ui/components")).status_code == 303  # to the sign-in page


async def used_once(app: Any) -> None:
    """An assertion id is accepted once (a race of two answers may never get this far: the
    pending sign-in is taken by the first)."""
    request = Request({"type": "http", "app": app, "headers": [], "method": "POST"})
    until = datetime.now(UTC) + timedelta(minutes=5)
    assert await saml_state.first_use(request, "idp", "id-1", until)
    assert not await saml_state.first_use(request, "idp", "id-1", until)
    assert await saml_state.first_use(request, "another-idp", "id-1", until)


async def audited(system: System, action: str) -> list[dict[str, Any]]:
    resp = await system.http.get(f"/api/v1/audit?action={action}", headers=system.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json())


async def test_saml_sign_in_maps_groups_and_refuses_forged_answers(
    system: System, idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await register_demo(system, replicas=1)
    await until(system, (await deploy(system, "v1"))["id"], "succeeded")
    done = await until(system, (await deploy(system, "v2"))["id"], "succeeded")
    page_path = f"/ui/deployments/{done['id']}"

    # Our metadata parses, says who we are and where to answer; the IdP loads it.
    metadata = await system.http.get("/ui/saml/metadata")
    assert metadata.headers["content-type"].startswith("application/samlmetadata+xml")
    root = ET.fromstring(metadata.text)
    assert root.get("entityID") == ENTITY_ID
    acs = root.find(f"{MD}SPSSODescriptor/{MD}AssertionConsumerService")
    assert acs is not None and acs.get("Location") == ACS
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert root.find(f"{MD}SPSSODescriptor/{MD}KeyDescriptor") is not None
    idp.trust(metadata.text, ENTITY_ID)

    async with browser(system) as http:
        login = await http.get("/ui/login")
        assert 'id="saml-sign-in"' in login.text and "Sign in with SAML" in login.text
        fields = await at_idp(idp, await start(http, idp, page_path), "victor")
        signed = await http.post("/ui/saml/acs", data=fields)
        assert signed.status_code == 303 and signed.headers["location"] == page_path
        page = await http.get(page_path)
        assert "saml:victor (viewer)" in page.text and 'id="action-' not in page.text
        # The same answer again, in the browser it signed in: its sign-in is over.
        again = await http.post("/ui/saml/acs", data=fields)
        assert again.status_code == 401 and "no SAML sign-in is under way" in again.text

    async with browser(system) as http:
        fields = await at_idp(idp, await start(http, idp, page_path), "alice")
        # Twice at once, as a replay racing the first use: one sign-in, one refusal.
        twice = await asyncio.gather(*(http.post("/ui/saml/acs", data=fields) for _ in "ab"))
        assert sorted(r.status_code for r in twice) == [303, 401]
        page = await http.get(page_path)
        assert "saml:alice (operator)" in page.text and 'id="action-rollback"' in page.text
        # Replayed later from another browser with a sign-in of its own: not its request.
        async with browser(system) as other:
            await start(other, idp, "/ui/components")
            await refused(other, fields, "does not belong to this browser's sign-in")

    attacks: list[tuple[Variant, str, str]] = [
        ("tampered", "victor", "not signed with the IdP's key"),
        ("other_key", "victor", "not signed with the IdP's key"),
        ("expired", "victor", "has expired"),
        ("other_audience", "victor", "meant for another service"),
        ("ok", "nora", "grants no role"),
    ]
    for variant, user, says in attacks:
        async with browser(system) as http:
            saml_request = await start(http, idp, "/ui/components")
            action, response = idp.respond(saml_request, user, variant)
            assert action == ACS
            await refused(http, {"SAMLResponse": response}, says)
    async with browser(system) as http:  # not even XML: a clear refusal, not a 500
        await start(http, idp, "/ui/components")
        await refused(http, {"SAMLResponse": "PCFET0NUWVBF"}, "could not be verified")

    # Unsolicited: an answer to a request another browser made, posted where none was made.
    async with browser(system) as http, browser(system) as asker:
        _, response = idp.respond(await start(asker, idp, "/ui/components"), "alice")
        await refused(http, {"SAMLResponse": response}, "no SAML sign-in is under way")

    reasons = [e["detail"]["reason"] for e in await audited(system, "auth.failed")]
    # The race's loser found the sign-in taken already, or the assertion used already.
    race = "ui_saml_replayed" if "ui_saml_replayed" in reasons else "ui_saml_unknown_request"
    expected = ["audience", "expired", "malformed", "no_role", "signature", "signature"] + [
        "unknown_request"
    ] * 4
    assert sorted(reasons) == sorted([f"ui_saml_{r}" for r in expected[:-1]] + [race])
    signed_in = await audited(system, "ui.signed_in")
    assert sorted(e["actor"] for e in signed_in) == ["saml:alice", "saml:victor"]
    assert {e["detail"]["via"] for e in signed_in} == {"saml"}
    await used_once(system.http._transport.app)  # type: ignore[attr-defined]
    # Nothing of the assertions reached the logs (pysaml2 would log NameIDs and assertions).
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "victor" not in logged and "alice" not in logged and "Assertion" not in logged


async def test_saml_sign_in_with_sessions_in_redis_uses_an_answer_once(
    make_system: Callable[..., Any], idp: Idp, redis_server: RedisServer
) -> None:
    """With REDIS_URL the pending sign-in and the used assertion ids are in Redis (shared by
    every replica), and a replay racing the first use still signs in once."""
    system: System = await make_system(
        worker=False,
        redis_url=redis_server.url,
        ui_public_url="http://api",
        ui_saml_idp_metadata=idp.metadata_url,
        oidc_role_map={"ui-viewers": "viewer"},  # no SAML map of its own: the OIDC one
    )
    app = system.http._transport.app  # type: ignore[attr-defined]
    try:
        idp.trust((await system.http.get("/ui/saml/metadata")).text, ENTITY_ID)
        async with browser(system) as http:
            fields = await at_idp(
                idp, await start(http, idp, "/ui/components", signed=False), "victor"
            )
            twice = await asyncio.gather(*(http.post("/ui/saml/acs", data=fields) for _ in "ab"))
            assert sorted(r.status_code for r in twice) == [303, 401]
            assert "saml:victor (viewer)" in (await http.get("/ui/components")).text
        async with app.state.sessions() as db:
            assert await db.scalar(select(func.count()).select_from(UiSessionRow)) == 0
        await used_once(app)
    finally:
        await app.state.ui_sessions.close()


async def test_saml_off_answers_404_and_the_sign_in_page_has_no_saml_button(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(worker=False)
    async with browser(system) as http:
        assert "saml-sign-in" not in (await http.get("/ui/login")).text
        for method, path in (
            ("GET", "/ui/saml/login"),
            ("GET", "/ui/saml/metadata"),
            ("POST", "/ui/saml/acs"),
        ):
            resp = await http.request(method, path)
            assert resp.status_code == 404, (path, resp.text)
            assert "SAML sign-in is not configured" in resp.text
