"""Encrypted payloads end to end: what Temporal stores is ciphertext, and the codec server (the
protocol the Temporal Web UI speaks) turns it back, for key holders only and from the UI's
origin only; a person in a browser signs in at /codec/session for a cookie the codec routes
accept instead of the key. A real worker and API, on the session's real Temporal server."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client

from api import codec_session
from cli.processes import free_port
from cli.temporal_server import dev_server_argv
from core.codec import ENCODING, KEY_ID
from core.models.apikeys import Principal, Role
from core.payload_keys import read_ring, rotate
from core.settings import Settings
from tests.integration.system import System
from tests.support import wait_for

MARKER = f"codec-marker-{uuid.uuid4().hex[:12]}"


async def run_marked_workflow(system: System) -> str:
    """A health check whose input (and activity input) carries MARKER; its workflow id."""
    resp = await system.start(input={"components": [MARKER]})
    assert resp.status_code == 202, resp.text
    wf_id = str(resp.json()["id"])
    await system.until_status(wf_id, "completed")
    return wf_id


async def raw_history(system: System, wf_id: str) -> History:
    """The history as Temporal holds it, read by a client WITHOUT the codec."""
    plain = await Client.connect(
        system.settings.temporal_target, namespace=system.settings.temporal_namespace
    )
    fetched = await plain.get_workflow_handle(wf_id).fetch_history()
    return History(events=fetched.events)


def wire(payload: Payload) -> dict[str, Any]:
    """A payload as the UI sends it: protobuf JSON, bytes in base64."""
    doc: dict[str, Any] = json_format.MessageToDict(payload)
    return doc


def data_of(doc: dict[str, Any]) -> bytes:
    return base64.b64decode(doc.get("data", ""))


async def test_temporal_stores_no_payload_in_clear(system: System) -> None:
    wf_id = await run_marked_workflow(system)
    history = await raw_history(system, wf_id)
    assert MARKER.encode() not in history.SerializeToString()
    started = history.events[0].workflow_execution_started_event_attributes
    [payload] = started.input.payloads
    assert payload.metadata["encoding"] == ENCODING
    current = read_ring(system.settings.home).current_id
    assert payload.metadata[KEY_ID].decode() == current


async def test_the_codec_server_decodes_history_payloads_for_a_viewer(system: System) -> None:
    wf_id = await run_marked_workflow(system)
    started = (await raw_history(system, wf_id)).events[0]
    body = {
        "payloads": [
            wire(p) for p in started.workflow_execution_started_event_attributes.input.payloads
        ]
    }
    viewer = await system.key("viewer")
    resp = await system.http.post("/codec/decode", json=body, headers=system.auth(viewer))
    assert resp.status_code == 200, resp.text
    [decoded] = resp.json()["payloads"]
    assert MARKER.encode() in data_of(decoded)
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"


async def test_the_codec_server_needs_an_api_key(system: System) -> None:
    for path in ("/codec/decode", "/codec/encode"):
        resp = await system.http.post(path, json={"payloads": []})
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["type"] == "Unauthenticated"
        bad = await system.http.post(path, json={"payloads": []}, headers=system.auth("r2c_nope"))
        assert bad.status_code == 401


async def test_encode_then_decode_round_trips_and_hides_the_value(system: System) -> None:
    original = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(f'"{MARKER}"'.encode()).decode()}  # fmt: skip
    encoded = await system.http.post(
        "/codec/encode", json={"payloads": [original]}, headers=system.auth()
    )
    assert encoded.status_code == 200, encoded.text
    [sealed] = encoded.json()["payloads"]
    assert MARKER.encode() not in data_of(sealed)
    decoded = await system.http.post("/codec/decode", json=encoded.json(), headers=system.auth())
    assert decoded.json() == {"payloads": [original]}


async def test_payloads_written_before_a_rotation_still_decode(system: System) -> None:
    wf_id = await run_marked_workflow(system)
    before = (await raw_history(system, wf_id)).events[0]
    old_key = before.workflow_execution_started_event_attributes.input.payloads[0].metadata[KEY_ID]
    rotated = rotate(system.settings.home)
    assert rotated.current_id.encode() != old_key
    body = {
        "payloads": [
            wire(p) for p in before.workflow_execution_started_event_attributes.input.payloads
        ]
    }
    resp = await system.http.post("/codec/decode", json=body, headers=system.auth())
    assert resp.status_code == 200 and MARKER.encode() in data_of(resp.json()["payloads"][0])


async def test_a_tampered_payload_is_422_naming_its_key(system: System) -> None:
    encoded = await system.http.post(
        "/codec/encode", json={"payloads": [{"data": "eyJhIjoxfQ=="}]}, headers=system.auth()
    )
    [sealed] = encoded.json()["payloads"]
    raw = bytearray(data_of(sealed))
    raw[-1] ^= 1
    sealed["data"] = base64.b64encode(bytes(raw)).decode()
    resp = await system.http.post(
        "/codec/decode", json={"payloads": [sealed]}, headers=system.auth()
    )
    assert resp.status_code == 422
    error = resp.json()["error"]
    key_id = base64.b64decode(sealed["metadata"][KEY_ID]).decode()
    assert error["type"] == "PayloadDecryptionError" and key_id in error["message"]
    assert error["details"] == {"key_id": key_id}


async def test_malformed_payloads_are_422_naming_the_payload(system: System) -> None:
    bad_base64 = {"payloads": [{"data": "eyJhIjoxfQ=="}, {"data": "not base64 !"}]}
    resp = await system.http.post("/codec/decode", json=bad_base64, headers=system.auth())
    assert resp.status_code == 422
    assert [f["field"] for f in resp.json()["error"]["fields"]] == ["body.payloads.1"]
    unknown = {"payloads": [{"data": "", "colour": "red"}]}
    resp = await system.http.post("/codec/decode", json=unknown, headers=system.auth())
    assert resp.status_code == 422 and "colour" in resp.text
    too_many = {"payloads": [{"data": ""}] * 1001}
    resp = await system.http.post("/codec/decode", json=too_many, headers=system.auth())
    assert resp.status_code == 422


async def test_the_ui_origin_gets_a_cors_preflight_answer(system: System) -> None:
    origin = system.settings.temporal_ui
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    resp = await system.http.options("/codec/decode", headers=preflight)
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == origin
    assert "POST" in resp.headers["access-control-allow-methods"]
    assert "x-namespace" in resp.headers["access-control-allow-headers"].lower()
    assert resp.headers["access-control-allow-credentials"] == "true"
    # The actual request from the UI carries the header the browser checks, errors included.
    denied = await system.http.post(
        "/codec/decode", json={"payloads": []}, headers={"Origin": origin}
    )
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == origin


async def test_no_other_origin_and_no_other_path_gets_cors(system: System) -> None:
    foreign = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    resp = await system.http.options("/codec/decode", headers=foreign)
    assert resp.status_code == 400
    assert "access-control-allow-origin" not in resp.headers
    origin = system.settings.temporal_ui
    api = await system.http.get("/api/v1/components", headers={**system.auth(), "Origin": origin})
    assert api.status_code == 200
    assert "access-control-allow-origin" not in api.headers


async def test_the_embedded_ui_is_pointed_at_the_api_codec_server(
    make_settings: Callable[..., Settings],
) -> None:
    """`r2c up`'s dev server gives its Web UI the API's /codec as the codec endpoint."""
    settings = make_settings(temporal_port=free_port(), temporal_ui_port=free_port())
    argv = dev_server_argv(settings, None, metrics_port=free_port())
    server = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=settings.temporal_ui) as ui:

            async def ui_settings() -> dict[str, Any] | None:
                try:
                    found: dict[str, Any] = (await ui.get("/api/v1/settings")).json()
                    return found
                except httpx.TransportError:
                    return None  # the UI is still starting

            answer = await wait_for(ui_settings, lambda s: s is not None, what="the Temporal UI")
        assert answer is not None
        assert answer["Codec"]["Endpoint"] == f"http://127.0.0.1:{settings.port}/codec"
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 15)


def browser(system: System) -> httpx.AsyncClient:
    """A client of its own (its own cookie jar) on the system's API, as a person's browser."""
    return httpx.AsyncClient(transport=system.http._transport, base_url=system.http.base_url)


async def sealed_marker(system: System) -> dict[str, Any]:
    """A payload holding MARKER, encrypted by the codec server with the admin key."""
    original = {"data": base64.b64encode(f'"{MARKER}"'.encode()).decode()}
    encoded = await system.http.post(
        "/codec/encode", json={"payloads": [original]}, headers=system.auth()
    )
    assert encoded.status_code == 200, encoded.text
    return dict(encoded.json())


async def test_a_codec_session_decodes_with_its_cookie_alone(system: System) -> None:
    viewer = await system.key("viewer", "codec-session-viewer")
    body = await sealed_marker(system)
    async with browser(system) as http:
        login = await http.post("/codec/session", json={"api_key": viewer})
        assert login.status_code == 200, login.text
        assert login.json()["key_name"] == "codec-session-viewer"
        assert login.json()["role"] == "viewer"
        cookie = login.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/codec", "Max-Age=28800"):
            assert attribute.lower() in cookie.lower(), cookie
        assert viewer not in cookie and viewer not in login.text
        resp = await http.post("/codec/decode", json=body)
        assert resp.status_code == 200, resp.text
        assert MARKER.encode() in data_of(resp.json()["payloads"][0])


async def test_a_wrong_key_opens_no_session_and_says_why(system: System) -> None:
    async with browser(system) as http:
        wrong = await http.post("/codec/session", json={"api_key": "r2c_nope_nope"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        assert wrong.json()["error"]["type"] == "Unauthenticated"
        for bad in ({"api_key": ""}, {"api_key": "x" * 201}, {"api_key": "k", "role": "admin"}):
            resp = await http.post("/codec/session", json=bad)
            assert resp.status_code == 422, resp.text
            assert "set-cookie" not in resp.headers and "x" * 201 not in resp.text
        assert (await http.post("/codec/decode", json={"payloads": []})).status_code == 401


async def test_guessing_a_key_at_the_session_page_is_rate_limited_like_anywhere(
    system: System,
) -> None:
    viewer = await system.key("viewer", "codec-session-guessed")
    guess = viewer[:-4] + ("aaaa" if not viewer.endswith("aaaa") else "bbbb")
    async with browser(system) as http:
        statuses = [
            (await http.post("/codec/session", json={"api_key": guess})).status_code
            for _ in range(6)
        ]
        assert statuses == [401] * 5 + [429], statuses
        limited = await http.post("/codec/session", json={"api_key": guess})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "set-cookie" not in limited.headers


async def test_revoking_the_key_ends_its_codec_sessions(system: System) -> None:
    viewer = await system.key("viewer", "codec-session-revoked")
    async with browser(system) as http:
        assert (await http.post("/codec/session", json={"api_key": viewer})).status_code == 200
        assert (await http.post("/codec/decode", json={"payloads": []})).status_code == 200
        revoke = await system.http.delete(
            "/api/v1/apikeys/codec-session-revoked", headers=system.auth()
        )
        assert revoke.status_code == 200, revoke.text
        resp = await http.post("/codec/decode", json={"payloads": []})
        assert resp.status_code == 401
        assert "/codec/session" in resp.json()["error"]["hint"]


async def test_an_altered_or_expired_or_foreign_session_is_refused(system: System) -> None:
    viewer = await system.key("viewer", "codec-session-tamper")
    async with browser(system) as http:
        assert (await http.post("/codec/session", json={"api_key": viewer})).status_code == 200
        token = http.cookies[codec_session.COOKIE_NAME]
    app = system.http._transport.app  # type: ignore[attr-defined]
    body, signature = token.split(".")
    principal = Principal(key_id="nothing", name="x", role=Role.VIEWER)
    expired, _ = codec_session.issue(app.state, principal, now=0)
    refused = {
        "altered": f"{body}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}",
        "expired": expired,
        "unsigned": body,
        "huge": "a." + "b" * 2000,
        "not ascii": f"{body}.\u00e9{signature[1:]}",
    }
    for what, value in refused.items():
        resp = await system.http.post(
            "/codec/decode",
            json={"payloads": []},
            # Latin-1 bytes: what a browser may send, and what httpx would refuse as str.
            headers={"Cookie": f"{codec_session.COOKIE_NAME}={value}".encode("latin-1")},
        )
        assert resp.status_code == 401, (what, resp.text)
    assert codec_session.key_id_of(app.state, token) is not None


async def test_signing_out_drops_the_session_cookie(system: System) -> None:
    viewer = await system.key("viewer", "codec-session-out")
    async with browser(system) as http:
        assert (await http.post("/codec/session", json={"api_key": viewer})).status_code == 200
        out = await http.delete("/codec/session")
        assert out.status_code == 204
        assert codec_session.COOKIE_NAME not in http.cookies
        assert (await http.post("/codec/decode", json={"payloads": []})).status_code == 401


async def test_the_session_page_offers_a_key_form_and_names_the_codec_endpoint(
    system: System,
) -> None:
    page = await system.http.get("/codec/session")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'type="password"' in page.text
    assert "http://api/codec" in page.text and system.settings.temporal_ui in page.text
    assert "Include cross-origin credentials" in page.text
