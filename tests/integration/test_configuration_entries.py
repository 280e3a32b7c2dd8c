"""Configuration entries through the real API and store: resolution with its source, versions
with who/when/diff, soft deletion, ETag races, schema refusals, roles and hostile input."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.system import System

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

URL = "/api/v1/configuration"
RUNTIME = {"command": ["serve", "--port", "{port}"]}
SCHEMA = {
    "type": "object",
    "properties": {
        "db.pool": {
            "type": "object",
            "properties": {"size": {"type": "integer", "maximum": 50}},
        },
        "mode": {"enum": ["fast", "safe"]},
    },
    "required": ["mode"],
}


@pytest.fixture
async def api(make_system: Callable[..., Any]) -> System:
    system: System = await make_system(worker=False)
    for name, schema in (("api", None), ("web", None), ("strict", SCHEMA)):
        body: dict[str, Any] = {"name": name, "runtime": RUNTIME}
        if schema:
            body["config_schema"] = schema
        resp = await system.http.post("/api/v1/components", json=body, headers=system.auth())
        assert resp.status_code == 201, resp.text
    return system


async def put(
    s: System, key: str, value: Any, headers: dict[str, str] | None = None, **scope: str
) -> httpx.Response:
    body = {"value": value, "scope": scope}
    return await s.http.put(f"{URL}/{key}", json=body, headers=headers or s.auth())


async def audit_count(s: System) -> int:
    return len((await s.http.get("/api/v1/audit?limit=1000", headers=s.auth())).json())


async def test_the_most_specific_scope_answers_and_says_where_it_came_from(api: System) -> None:
    assert (await put(api, "db.pool_size", 5)).status_code == 201
    assert (await put(api, "db.pool_size", 10, environment="prod")).status_code == 201
    assert (await put(api, "db.pool_size", 20, component="api")).status_code == 201
    assert (
        await put(api, "db.pool_size", 40, component="api", environment="prod")
    ).status_code == 201

    async def resolved(**q: str) -> dict[str, Any]:
        resp = await api.http.get(f"{URL}/db.pool_size", params=q, headers=api.auth())
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    got = await resolved(component="api", environment="prod")
    assert (got["value"], got["source"]) == (40, {"component": "api", "environment": "prod"})
    got = await resolved(component="api", environment="dev")
    assert (got["value"], got["source"]) == (20, {"component": "api", "environment": None})
    got = await resolved(component="web", environment="prod")
    assert (got["value"], got["source"]) == (10, {"component": None, "environment": "prod"})
    got = await resolved(component="web")
    assert (got["value"], got["source"]) == (5, {"component": None, "environment": None})

    listed = await api.http.get(URL, params={"component": "api"}, headers=api.auth())
    assert listed.status_code == 200
    assert [(e["key"], e["value"]) for e in listed.json()["entries"]] == [("db.pool_size", 20)]
    assert listed.json()["revision"] == 3, "the change in prod does not affect api globally"


async def test_every_change_is_a_version_with_who_when_and_diff_and_deletion_is_soft(
    api: System,
) -> None:
    operator = await api.key("operator", "ops")
    assert (await put(api, "feature", {"on": False, "pct": 5})).status_code == 201
    second = await put(api, "feature", {"on": True, "pct": 5}, api.auth(operator))
    assert second.status_code == 200 and second.json()["version"] == 2
    again = await put(api, "feature", {"on": True, "pct": 5})
    assert again.json()["version"] == 2, "an unchanged value makes no version"
    deleted = await api.http.delete(f"{URL}/feature", headers=api.auth())
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["action"] == "deleted"
    gone = await api.http.get(f"{URL}/feature", headers=api.auth())
    assert gone.status_code == 404

    versions = await api.http.get(f"{URL}/feature/versions", headers=api.auth())
    assert versions.status_code == 200
    v3, v2, v1 = versions.json()
    assert (v1["action"], v1["by"], v1["diff"][0]["op"]) == ("set", "apikey:admin", "added")
    assert v2["by"] == "apikey:ops"
    assert v2["diff"] == [{"path": "$.on", "op": "changed", "before": False, "after": True}]
    assert v3["action"] == "deleted" and v3["diff"][0]["op"] == "removed"
    assert v1["at"] < v2["at"] < v3["at"]

    old = await api.http.get(f"{URL}/feature", params={"version": 1}, headers=api.auth())
    assert old.status_code == 200 and old.json()["value"] == {"on": False, "pct": 5}
    assert "etag" not in old.headers, "an old version is no base for a change"
    revived = await put(api, "feature", 1)
    assert revived.status_code == 201 and revived.json()["version"] == 4


async def test_two_writers_with_the_same_etag_exactly_one_wins(api: System) -> None:
    first = await put(api, "limits.rps", 100, component="api")
    tag = first.headers["etag"]
    for round_ in range(3):
        both = await asyncio.gather(
            *(
                put(
                    api,
                    "limits.rps",
                    10 * round_ + i,
                    {**api.auth(), "If-Match": tag},
                    component="api",
                )
                for i in range(2)
            )
        )
        codes = sorted(r.status_code for r in both)
        assert codes == [200, 412], [r.text for r in both]
        winner = next(r for r in both if r.status_code == 200)
        loser = next(r for r in both if r.status_code == 412)
        assert loser.json()["error"]["type"] == "PreconditionFailed"
        now = await api.http.get(f"{URL}/limits.rps?component=api", headers=api.auth())
        assert now.json()["value"] == winner.json()["value"]
        assert now.json()["version"] == round_ + 2
        tag = now.headers["etag"]
    history = await api.http.get(f"{URL}/limits.rps/versions?component=api", headers=api.auth())
    assert [v["version"] for v in history.json()] == [4, 3, 2, 1]
    stale = await api.http.delete(
        f"{URL}/limits.rps?component=api", headers={**api.auth(), "If-Match": first.headers["etag"]}
    )
    assert stale.status_code == 412


async def test_if_match_on_a_missing_entry_is_412(api: System) -> None:
    resp = await put(api, "nothing.here", 1, {**api.auth(), "If-Match": '"1.1"'})
    assert resp.status_code == 412
    assert (await api.http.get(f"{URL}/nothing.here", headers=api.auth())).status_code == 404


async def test_a_change_that_breaks_a_component_schema_is_422_naming_key_path_and_rule(
    api: System,
) -> None:
    assert (await put(api, "mode", "fast")).status_code == 201
    before = await audit_count(api)
    resp = await put(api, "db.pool", {"size": 500}, component="strict")
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert "db.pool" in error["message"] and "$['db.pool']['size']" in error["message"]
    problem = error["details"]["problems"][0]
    assert problem == {
        "key": "db.pool",
        "path": "$['db.pool']['size']",
        "rule": "maximum: 50",
        "message": problem["message"],
    }
    # A global change is checked for every component with a schema, in every environment
    # it has entries in: here the environment-specific view of `strict` in prod.
    assert (
        await put(api, "mode", "safe", component="strict", environment="prod")
    ).status_code == 201
    broken = await put(api, "mode", "reckless", environment="prod")
    assert broken.status_code == 201, "strict's prod value overrides it: still valid"
    refused = await api.http.delete(f"{URL}/mode", headers=api.auth())
    assert refused.status_code == 422 and "required" in refused.json()["error"]["message"]
    assert (await audit_count(api)) == before + 2
    pool = await api.http.get(f"{URL}/db.pool?component=strict", headers=api.auth())
    assert pool.status_code == 404, "nothing of the refused change was written"


async def test_viewers_read_operators_write_and_nobody_below_writes(api: System) -> None:
    viewer, operator = await api.key("viewer", "v"), await api.key("operator", "o")
    denied = await put(api, "x", 1, api.auth(viewer))
    assert denied.status_code == 403
    assert (await put(api, "x", 1, api.auth(operator))).status_code == 201
    read = await api.http.get(f"{URL}/x", headers=api.auth(viewer))
    assert read.status_code == 200 and read.json()["value"] == 1
    assert (await api.http.delete(f"{URL}/x", headers=api.auth(viewer))).status_code == 403
    assert (await api.http.delete(f"{URL}/x", headers=api.auth(operator))).status_code == 200


@pytest.mark.parametrize(
    ("key", "body", "status"),
    [
        ("Upper.Case", {"value": 1}, 422),
        ("a..b", {"value": 1}, 422),
        ("k" * 129, {"value": 1}, 422),
        ("ok", {"value": "x" * 70_000}, 422),
        ("ok", {"value": 1, "scope": {"component": "no-such"}}, 404),
        ("ok", {"value": 1, "scope": {"component": "UPPER"}}, 422),
        ("ok", {"value": 1, "extra": True}, 422),
        ("ok", {}, 422),
    ],
)
async def test_hostile_input_is_refused_with_what_to_fix(
    api: System, key: str, body: dict[str, Any], status: int
) -> None:
    before = await audit_count(api)
    resp = await api.http.put(f"{URL}/{key}", json=body, headers=api.auth())
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["message"]
    assert await audit_count(api) == before


async def test_environment_policies_apply_to_configuration_writes(api: System) -> None:
    operator = await api.key("operator", "o")
    policy = {"protected": True, "config_changes_need_approval": True}
    resp = await api.http.put("/api/v1/policies/prod", json=policy, headers=api.auth())
    assert resp.status_code == 200, resp.text
    protected = await put(api, "x", 1, api.auth(operator), environment="prod")
    assert protected.status_code == 403 and "prod" in protected.json()["error"]["message"]
    global_write = await put(api, "x", 1, api.auth(operator))
    assert global_write.status_code == 403, "a global entry reaches prod too"
    assert (await put(api, "x", 1, environment="prod")).status_code == 403
    body = {"value": 1, "scope": {"environment": "prod"}}
    overridden = await api.http.put(f"{URL}/x?freeze_override=true", json=body, headers=api.auth())
    assert overridden.status_code == 201, overridden.text
    assert (await put(api, "x", 1, api.auth(operator), environment="dev")).status_code == 201


async def test_a_component_schema_is_checked_when_registered(api: System) -> None:
    spec = {"name": "bad", "runtime": RUNTIME, "config_schema": {"type": 12}}
    resp = await api.http.post("/api/v1/components", json=spec, headers=api.auth())
    assert resp.status_code == 422
    assert "config_schema" in resp.text and "JSON Schema" in resp.text
    shown = await api.http.get("/api/v1/components/strict", headers=api.auth())
    assert shown.json()["config_schema"] == SCHEMA


async def test_an_oversized_if_match_or_unknown_component_is_refused(api: System) -> None:
    long_tag = await put(api, "x", 1, {**api.auth(), "If-Match": '"' + "1" * 2000 + '"'})
    assert long_tag.status_code == 422
    for url in (f"{URL}?component=nobody", f"{URL}/x?component=nobody"):
        resp = await api.http.get(url, headers=api.auth())
        assert resp.status_code == 404 and "nobody" in resp.text
