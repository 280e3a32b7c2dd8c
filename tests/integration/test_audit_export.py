"""The audit trail as an admin or a SIEM reads it: GET /api/v1/audit filtered and paged by
cursor, GET /api/v1/audit/verify, `r2c audit verify|export|prune` as real commands, and refused
requests (bad keys, too low a role) in the trail, limited, without the key."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import text

from api.auth_audit import RefusalLimiter
from core.audit_chain import GENESIS
from core.db.engine import make_engine
from tests.integration.system import System

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)


async def events(s: System, query: str = "") -> list[dict[str, Any]]:
    resp = await s.http.get(f"/api/v1/audit?limit=1000{query}", headers=s.auth())
    assert resp.status_code == 200, resp.text
    return list(resp.json())


async def tamper(s: System, statement: str) -> None:
    engine = make_engine(s.settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def r2c(s: System, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_URL"}
    env["R2C_HOME"] = str(s.settings.home)
    if s.settings.postgres_url:
        env["POSTGRES_URL"] = s.settings.postgres_url
    return subprocess.run(
        [sys.executable, "-m", "cli", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_pages_follow_the_cursor_and_filters_narrow(
    make_system: Callable[..., Any],
) -> None:
    s: System = await make_system(worker=False)
    for i in range(7):
        await s.key("viewer", f"k{i}")
    everything = await events(s)
    assert [e["action"] for e in everything] == ["apikey.created"] * 7

    seen: list[dict[str, Any]] = []
    cursor = ""
    pages = 0
    while True:
        resp = await s.http.get(f"/api/v1/audit?limit=3{cursor}", headers=s.auth())
        assert resp.status_code == 200, resp.text
        seen += resp.json()
        pages += 1
        following = resp.headers.get("x-next-cursor")
        if following is None:
            break
        cursor = f"&cursor={following}"
    assert pages == 3 and seen == everything  # newest first, nothing twice, nothing left out

    assert [e["target"] for e in await events(s, "&target=k3")] == ["k3"]
    assert len(await events(s, "&action=apikey.created&actor=apikey:admin")) == 7
    assert await events(s, "&actor=nobody") == []
    middle = everything[3]["at"]
    newer = await events(s, f"&since={middle.replace('+00:00', 'Z')}")
    older = await events(s, f"&until={middle.replace('+00:00', 'Z')}")
    assert len(newer) + len(older) == 7 and newer[-1]["id"] == everything[3]["id"]
    # Each event carries its link, hash and MAC.
    assert all(len(e["hash"]) == 64 and len(e["mac"]) == 64 for e in everything)

    for bad in ("&cursor=abc", "&cursor=-1", "&cursor=0", "&limit=0", "&actor=" + "x" * 300):
        resp = await s.http.get(f"/api/v1/audit?x=1{bad}", headers=s.auth())
        assert resp.status_code == 422, (bad, resp.text)
    later = datetime.now(UTC) + timedelta(hours=1)
    resp = await s.http.get(
        "/api/v1/audit",
        params={"since": later.isoformat(), "until": datetime.now(UTC).isoformat()},
        headers=s.auth(),
    )
    assert resp.status_code == 422 and "since" in resp.text, resp.text
    for edge in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        resp = await s.http.get("/api/v1/audit", params={"since": edge}, headers=s.auth())
        assert resp.status_code == 422 and "out of range" in resp.text, resp.text
    # Another zone means the same instant: the filter compares instants, not wall clocks.
    shifted = datetime.fromisoformat(middle).astimezone(timezone(timedelta(hours=5)))
    assert await events(s, "&" + urlencode({"since": shifted.isoformat()})) == newer


async def test_verify_through_the_api_and_the_command(make_system: Callable[..., Any]) -> None:
    s: System = await make_system(worker=False)
    for i in range(4):
        await s.key("viewer", f"k{i}")
    resp = await s.http.get("/api/v1/audit/verify", headers=s.auth())
    assert resp.status_code == 200, resp.text
    assert resp.json()["intact"] and resp.json()["checked"] == 4
    ok = r2c(s, "verify")
    assert ok.returncode == 0 and "intact: 4 event(s)" in ok.stdout, ok.stdout + ok.stderr

    await tamper(s, "UPDATE audit_events SET actor = 'someone' WHERE id = 2")
    verdict = (await s.http.get("/api/v1/audit/verify", headers=s.auth())).json()
    assert not verdict["intact"]
    assert verdict["broken"]["id"] == 2 and verdict["broken"]["problem"] == "changed"
    broken = r2c(s, "verify")
    assert broken.returncode == 1 and "BROKEN at event 2 (changed)" in broken.stdout
    as_json = json.loads(r2c(s, "verify", "--json").stdout)
    assert as_json["broken"]["id"] == 2

    viewer = await s.key("viewer", "reader")
    resp = await s.http.get("/api/v1/audit/verify", headers=s.auth(viewer))
    assert resp.status_code == 403


async def test_the_export_can_be_checked_without_our_code(make_system: Callable[..., Any]) -> None:
    s: System = await make_system(worker=False)
    for i in range(3):
        await s.key("viewer", f"k{i}")
    done = r2c(s, "export", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["id"] for e in lines] == [1, 2, 3]
    # A SIEM re-derives every hash with the formula of docs/audit.md and follows the links.
    prev = GENESIS
    for e in lines:
        fields = {k: e[k] for k in ("id", "at", "actor", "action", "target", "detail")}
        fields["request_id"] = e["request_id"]
        body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert e["prev_hash"] == prev
        assert hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest() == e["hash"]
        prev = e["hash"]
    only = r2c(s, "export", "--target", "k1")
    assert [json.loads(line)["target"] for line in only.stdout.splitlines()] == ["k1"]
    bad = r2c(s, "export", "--since", "yesterday")
    assert bad.returncode == 2 and "ISO time" in bad.stderr


async def test_prune_by_command_keeps_the_chain_verifiable(
    make_system: Callable[..., Any],
) -> None:
    s: System = await make_system(worker=False)
    for i in range(3):
        await s.key("viewer", f"k{i}")
    kept = r2c(s, "prune")  # retention 0: every event is kept
    assert kept.returncode == 0 and "every event is kept" in kept.stdout
    pruned = r2c(s, "prune", "--older-than-days", "1")
    assert pruned.returncode == 0 and "pruned 0 event(s)" in pruned.stdout, pruned.stdout
    await s.key("viewer", "after")
    rotated = r2c(s, "rotate-key")
    assert rotated.returncode == 0 and "1 older key(s) kept" in rotated.stdout, rotated.stderr
    await s.key("viewer", "after-rotation")  # the running API signs with the new key
    ok = r2c(s, "verify")
    assert ok.returncode == 0 and "intact: 6 event(s)" in ok.stdout, ok.stdout + ok.stderr
    trail = await events(s)
    assert trail[1]["action"] == "audit_key.rotated"
    assert trail[0]["key_id"] == trail[1]["key_id"] == trail[1]["target"] != trail[2]["key_id"]


async def test_refused_requests_are_audited_without_the_key(
    make_system: Callable[..., Any],
) -> None:
    s: System = await make_system(worker=False, audit_auth_failures_per_minute=5)
    viewer = await s.key("viewer", "reader")
    wrong = viewer[:-4] + "AAAA"  # the reader's prefix, a wrong secret
    unknown = "r2c_0123456789ab_" + "S" * 43
    for key in (wrong, unknown, "not-even-a-key"):
        resp = await s.http.get("/api/v1/components", headers=s.auth(key))
        assert resp.status_code == 401
    resp = await s.http.post("/api/v1/apikeys", json={"name": "x"}, headers=s.auth(viewer))
    assert resp.status_code == 403

    trail = await events(s)
    failed = [e for e in trail if e["action"] == "auth.failed"]
    denied = [e for e in trail if e["action"] == "auth.denied"]
    assert {e["detail"].get("key_prefix") for e in failed} == {
        viewer.split("_")[1],
        "0123456789ab",
        None,
    }
    assert all(e["target"] == "/api/v1/components" for e in failed)
    assert denied[0]["actor"] == "apikey:reader" and denied[0]["detail"]["required"] == "admin"
    shown = json.dumps(trail)
    # The secret is base64url: it may hold "_" itself.
    for secret in (viewer, wrong, unknown, "not-even-a-key", viewer.split("_", 2)[2]):
        assert secret not in shown

    # A 403 from a service's own check (terminating needs admin) is a denial too.
    operator = await s.key("operator", "op")
    resp = await s.http.delete(
        "/api/v1/orchestration/workflows/some-id?terminate=true", headers=s.auth(operator)
    )
    assert resp.status_code == 403, resp.text
    (later,) = [e for e in await events(s) if e["actor"] == "apikey:op"]
    assert later["action"] == "auth.denied" and later["detail"]["reason"] == "forbidden"
    assert "terminating needs the admin role" in later["detail"]["message"]

    # A flood from the same address: five a minute are recorded, the rest counted.
    for _ in range(10):
        await s.http.get("/api/v1/components", headers=s.auth(unknown))
    assert len([e for e in await events(s) if e["action"].startswith("auth.")]) == 5
    resp = await s.http.get("/api/v1/audit/verify", headers=s.auth())
    assert resp.json()["intact"]


def test_the_refusal_limiter_counts_what_it_leaves_out() -> None:
    limiter = RefusalLimiter(2)
    assert limiter.admit("a", "p1", now=0) == 0
    assert limiter.admit("a", "p2", now=1) == 0
    assert limiter.admit("a", "p3", now=2) is None  # the address is over its limit
    assert limiter.admit("b", "p1", now=3) == 0
    assert limiter.admit("c", "p1", now=4) is None  # the key prefix is over its limit
    assert limiter.admit("a", None, now=61) == 1  # a new minute: one was left out before
