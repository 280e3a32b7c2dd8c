"""API key lifecycle (issue 12): expiry, last use, rotation with a grace, and the maximum
lifetime per role, through the real API on the test's store (SQLite, or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.system import System
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

KEYS = "/api/v1/apikeys"
SOME_ROUTE = "/api/v1/components"


async def _create(system: System, **body: Any) -> dict[str, Any]:
    resp = await system.http.post(KEYS, json=body, headers=system.auth())
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _listed(system: System, key_id: str) -> dict[str, Any]:
    resp = await system.http.get(KEYS, headers=system.auth())
    assert resp.status_code == 200, resp.text
    return next(k for k in resp.json() if k["id"] == key_id)


async def _use(system: System, key: str) -> httpx.Response:
    return await system.http.get(SOME_ROUTE, headers=system.auth(key))


async def test_an_expiring_key_works_until_it_expires_then_is_refused(system: System) -> None:
    created = await _create(system, name="short-lived", role="viewer", expires_in="2s")
    key = created["key"]
    assert created["expires_at"] is not None
    assert (await _use(system, key)).status_code == 200  # verified, and now in the cache

    refused = await wait_for(
        lambda: _use(system, key), lambda r: r.status_code == 401, within=10, what="expiry"
    )
    error = refused.json()["error"]
    assert error["message"] == "API key expired"
    assert key not in refused.text and key.split("_", 2)[2] not in refused.text
    # Still refused from the cache, and the verdict is the same on every request.
    assert (await _use(system, key)).json()["error"]["message"] == "API key expired"

    # An expired key cannot be rotated back to life.
    rotate = await system.http.post(
        f"{KEYS}/{created['id']}/rotate", json={"grace": "0s"}, headers=system.auth()
    )
    assert rotate.status_code == 409 and "expired" in rotate.json()["error"]["message"]
    assert rotate.json()["error"]["hint"]


async def test_a_key_without_expiry_never_expires_and_bad_expiries_are_422(
    system: System,
) -> None:
    created = await _create(system, name="forever", role="viewer")
    assert created["expires_at"] is None
    for bad in ("0s", "3651d", "soon", -5, "1e9"):
        resp = await system.http.post(
            KEYS, json={"name": "bad", "expires_in": bad}, headers=system.auth()
        )
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["error"]["hint"]


async def test_last_used_at_moves_when_the_key_is_used(system: System) -> None:
    created = await _create(system, name="user", role="viewer")
    assert (await _listed(system, created["id"]))["last_used_at"] is None
    assert (await _use(system, created["key"])).status_code == 200

    async def last_used() -> str | None:
        value = (await _listed(system, created["id"]))["last_used_at"]
        return None if value is None else str(value)

    first = await wait_for(last_used, what="last_used_at recorded")
    assert first >= created["created_at"]


async def test_rotation_gives_a_new_key_and_the_old_one_works_for_the_grace(
    system: System,
) -> None:
    old = await _create(system, name="ci-bot", role="operator", expires_in="30d")
    assert (await _use(system, old["key"])).status_code == 200
    rotated = await system.http.post(
        f"{KEYS}/{old['id']}/rotate", json={"grace": "2s"}, headers=system.auth()
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["key"] != old["key"] and new["id"] != old["id"] and new["replaces"] == old["id"]
    assert (new["name"], new["role"]) == ("ci-bot", "operator")
    assert new["expires_at"] > old["expires_at"]  # the old key's lifetime, from now

    # Both keys work during the grace; the old one is listed as replaced.
    assert (await _use(system, old["key"])).status_code == 200
    assert (await _use(system, new["key"])).status_code == 200
    listed = await _listed(system, old["id"])
    assert listed["replaced_by"] == new["id"] and listed["grace_until"] is not None

    refused = await wait_for(
        lambda: _use(system, old["key"]), lambda r: r.status_code == 401, within=10, what="grace"
    )
    assert refused.json()["error"]["message"] == "API key was rotated; use the new one"
    assert old["key"] not in refused.text
    assert (await _use(system, new["key"])).status_code == 200

    # A second rotation of the same old key is refused and names its replacement.
    again = await system.http.post(
        f"{KEYS}/{old['id']}/rotate", json={"grace": "1h"}, headers=system.auth()
    )
    assert again.status_code == 409 and new["id"] in again.json()["error"]["message"]
    # The name still designates the current key: revoking by name revokes the new one.
    revoked = await system.http.delete(f"{KEYS}/ci-bot", headers=system.auth())
    assert revoked.status_code == 200 and revoked.json()["id"] == new["id"]
    assert (await _use(system, new["key"])).status_code == 401


async def test_rotation_without_grace_stops_the_old_key_at_once(system: System) -> None:
    old = await _create(system, name="leaked", role="viewer")
    assert (await _use(system, old["key"])).status_code == 200  # cached
    rotated = await system.http.post(
        f"{KEYS}/{old['id']}/rotate", json={"grace": 0}, headers=system.auth()
    )
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["expires_at"] is None  # the old key had no expiry either
    refused = await _use(system, old["key"])
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "API key was rotated; use the new one"
    assert (await _use(system, rotated.json()["key"])).status_code == 200


async def test_rotation_refusals(system: System) -> None:
    key = await _create(system, name="target", role="viewer")
    url = f"{KEYS}/{key['id']}/rotate"
    for bad in ({"grace": "8d"}, {"grace": "-1s"}, {"grace": "x"}, {"expires_in": "0s"}):
        resp = await system.http.post(url, json=bad, headers=system.auth())
        assert resp.status_code == 422, (bad, resp.text)
    unknown = await system.http.post(f"{KEYS}/nope/rotate", json={}, headers=system.auth())
    assert unknown.status_code == 404
    viewer = await system.http.post(url, json={}, headers=system.auth(key["key"]))
    assert viewer.status_code == 403
    await system.http.delete(f"{KEYS}/{key['id']}", headers=system.auth())
    revoked = await system.http.post(url, json={}, headers=system.auth())
    assert revoked.status_code == 409 and "revoked" in revoked.json()["error"]["message"]
    assert revoked.json()["error"]["hint"]


async def test_a_maximum_lifetime_per_role(make_system: Callable[..., Any]) -> None:
    system: System = await make_system(
        worker=False, apikey_max_lifetime_days={"operator": 30, "admin": 7}
    )
    forever = await system.http.post(
        KEYS, json={"name": "op", "role": "operator"}, headers=system.auth()
    )
    assert forever.status_code == 422
    assert "30 days" in forever.json()["error"]["message"]
    assert "30d" in forever.json()["error"]["hint"]
    too_long = await system.http.post(
        KEYS, json={"name": "op", "role": "operator", "expires_in": "31d"}, headers=system.auth()
    )
    assert too_long.status_code == 422
    ok = await _create(system, name="op", role="operator", expires_in="30d")
    assert (await _create(system, name="reader", role="viewer"))["expires_at"] is None

    # Rotation keeps within it: a longer lifetime is refused, the default inherits 30 days.
    longer = await system.http.post(
        f"{KEYS}/{ok['id']}/rotate", json={"expires_in": "60d"}, headers=system.auth()
    )
    assert longer.status_code == 422
    rotated = await system.http.post(f"{KEYS}/{ok['id']}/rotate", json={}, headers=system.auth())
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["expires_at"] is not None


async def test_a_codec_session_ends_with_its_rotated_key(system: System) -> None:
    """The codec server's browser session (8 h) must not outlive the key it was opened with."""
    old = await _create(system, name="codec-user", role="viewer")
    async with httpx.AsyncClient(
        transport=system.http._transport, base_url=system.http.base_url
    ) as browser:
        login = await browser.post("/codec/session", json={"api_key": old["key"]})
        assert login.status_code == 200, login.text
        assert (await browser.post("/codec/decode", json={"payloads": []})).status_code == 200
        rotated = await system.http.post(
            f"{KEYS}/{old['id']}/rotate", json={"grace": "0s"}, headers=system.auth()
        )
        assert rotated.status_code == 201
        after = await browser.post("/codec/decode", json={"payloads": []})
        assert after.status_code == 401 and "rotated" in after.json()["error"]["message"]
