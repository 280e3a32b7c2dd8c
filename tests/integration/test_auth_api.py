"""API keys and roles: 401 without a key, 403 below the role, revocation, hashed storage."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from core.db import apikeys
from core.db.engine import make_engine, sessions
from core.db.tables import ApiKeyRow
from tests.integration.system import System
from tests.support import wait_for

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)


async def test_missing_and_wrong_keys_are_401(system: System) -> None:
    url = "/api/v1/orchestration/workflows"
    assert (await system.http.get(url)).status_code == 401
    bad = await system.http.get(url, headers={"Authorization": "Bearer r2c_0000_nope"})
    assert bad.status_code == 401
    assert "revoked" in bad.json()["error"]["message"]
    garbage = await system.http.get(url, headers={"X-API-Key": "garbage"})
    assert garbage.status_code == 401


async def test_both_header_forms_work(system: System) -> None:
    url = "/api/v1/orchestration/workflow-types"
    assert (await system.http.get(url, headers={"X-API-Key": system.admin_key})).status_code == 200
    assert (await system.http.get(url, headers=system.auth())).status_code == 200


async def test_roles_gate_actions(system: System) -> None:
    viewer = await system.key("viewer")
    operator = await system.key("operator")
    start = {"type": "component-health-check", "input": {}}
    url = "/api/v1/orchestration/workflows"
    denied = await system.http.post(url, json=start, headers=system.auth(viewer))
    assert denied.status_code == 403
    assert "operator" in denied.json()["error"]["message"]
    allowed = await system.http.post(url, json=start, headers=system.auth(operator))
    assert allowed.status_code == 202
    detail = await system.until_status(allowed.json()["id"], "completed")
    assert detail["initiator"] == "apikey:operator-key"
    keys = await system.http.get("/api/v1/apikeys", headers=system.auth(operator))
    assert keys.status_code == 403


async def test_created_key_is_shown_once_stored_hashed_and_revocable(system: System) -> None:
    created = await system.http.post(
        "/api/v1/apikeys", json={"name": "ci-bot", "role": "operator"}, headers=system.auth()
    )
    assert created.status_code == 201
    key = created.json()["key"]
    listed = await system.http.get("/api/v1/apikeys", headers=system.auth())
    assert all("key" not in k for k in listed.json())
    assert "ci-bot" in [k["name"] for k in listed.json()]

    engine = make_engine(system.settings)
    async with sessions(engine)() as session:
        rows = (await session.execute(select(ApiKeyRow))).scalars().all()
    await engine.dispose()
    assert all(key not in (r.key_hash, r.prefix) for r in rows)
    assert all(r.key_hash.startswith("$argon2") for r in rows)

    ok = await system.http.get("/api/v1/components", headers=system.auth(key))
    assert ok.status_code == 200
    dup = await system.http.post(
        "/api/v1/apikeys", json={"name": "ci-bot", "role": "viewer"}, headers=system.auth()
    )
    assert dup.status_code == 409
    revoked = await system.http.delete("/api/v1/apikeys/ci-bot", headers=system.auth())
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    after = await system.http.get("/api/v1/components", headers=system.auth(key))
    assert after.status_code == 401
    again = await system.http.delete("/api/v1/apikeys/ci-bot", headers=system.auth())
    assert again.status_code == 404


async def test_bad_key_request_is_422(system: System) -> None:
    resp = await system.http.post(
        "/api/v1/apikeys", json={"name": "x y", "role": "god"}, headers=system.auth()
    )
    assert resp.status_code == 422
    fields = {f["field"] for f in resp.json()["error"]["fields"]}
    assert fields == {"body.name", "body.role"}


async def test_every_answer_carries_a_request_id(system: System) -> None:
    resp = await system.http.get("/health", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    err = await system.http.get("/api/v1/components")
    assert err.json()["error"]["request_id"] == err.headers["x-request-id"]


async def test_a_burst_with_a_new_key_verifies_its_hash_once(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await system.key("viewer", "burst")
    calls: list[str] = []
    real = apikeys.verify_hash

    def counting(key_hash: str, presented: str) -> bool:
        calls.append(presented)
        return real(key_hash, presented)

    monkeypatch.setattr(apikeys, "verify_hash", counting)
    answers = await asyncio.gather(
        *(system.http.get("/api/v1/components", headers=system.auth(key)) for _ in range(20))
    )
    assert [r.status_code for r in answers] == [200] * 20
    assert len(calls) == 1


async def test_wrong_secrets_for_a_key_prefix_are_limited_before_argon2(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await system.key("viewer", "target")
    prefix = key.split("_")[1]
    calls: list[str] = []
    real = apikeys.verify_hash

    def counting(key_hash: str, presented: str) -> bool:
        calls.append(presented)
        return real(key_hash, presented)

    monkeypatch.setattr(apikeys, "verify_hash", counting)
    limit = system.settings.auth_failures_per_key
    answers = []
    for i in range(limit + 2):
        wrong = f"r2c_{prefix}_wrong-secret-{i}"
        answers.append(await system.http.get("/api/v1/components", headers=system.auth(wrong)))
    assert [r.status_code for r in answers] == [401] * limit + [429, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[-1].json()["error"]["type"] == "RateLimited"
    assert len(calls) == limit  # the refused attempts cost no argon2 verification


async def test_wrong_secrets_from_one_address_are_limited(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(worker=False, auth_failures_per_address=3)
    prefixes = [(await system.key("viewer", f"k{i}")).split("_")[1] for i in range(4)]
    codes = []
    for prefix in prefixes:
        resp = await system.http.get(
            "/api/v1/components", headers=system.auth(f"r2c_{prefix}_wrong")
        )
        codes.append(resp.status_code)
    assert codes == [401, 401, 401, 429]


async def test_a_key_revoked_during_its_first_verification_is_not_cached(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await system.key("viewer", "revoked-midway")
    entered, go = threading.Event(), threading.Event()
    real = apikeys.verify_hash

    def held(key_hash: str, presented: str) -> bool:
        if presented == key:
            entered.set()
            go.wait(30)
        return real(key_hash, presented)

    monkeypatch.setattr(apikeys, "verify_hash", held)
    in_flight = asyncio.create_task(system.http.get("/api/v1/components", headers=system.auth(key)))

    async def verifying() -> bool:
        return entered.is_set()

    await wait_for(verifying, what="the first verification to be running")
    revoked = await system.http.delete("/api/v1/apikeys/revoked-midway", headers=system.auth())
    assert revoked.status_code == 200
    go.set()
    assert (await in_flight).status_code == 401
    after = await system.http.get("/api/v1/components", headers=system.auth(key))
    assert after.status_code == 401
