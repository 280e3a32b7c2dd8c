"""Signed webhooks against the real system: sources whose secrets live in a real OpenBao, a
GitHub-style release delivery that a route turns into a canary deployment, replays and
concurrent retries that act once, refused signatures that start nothing, and a secret that
never appears in an answer or in the store."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.services.webhooks import signature
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.integration.test_components_api import DEMO
from tests.integration.test_configuration_secrets import store_text

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

SOURCES = "/api/v1/webhook-sources"
CANARY = {"type": "canary", "steps": [{"set_weight": 50}]}


@pytest.fixture
async def api(make_system: Callable[..., Any], openbao: OpenBaoServer) -> System:
    system: System = await make_system(noop=True, vault_url=openbao.url, vault_token=openbao.token)
    return system


async def component(system: System) -> str:
    """A component of this test's own: deployment workflow ids are shared by the server."""
    name = f"ev-{uuid.uuid4().hex[:8]}"
    resp = await system.http.post(
        "/api/v1/components", json={**DEMO, "name": name}, headers=system.auth()
    )
    assert resp.status_code == 201, resp.text
    return name


async def source(system: System, name: str, kind: str = "github", **extra: Any) -> str:
    secret = f"whsec-{uuid.uuid4().hex}"
    resp = await system.http.post(
        SOURCES, json={"name": name, "kind": kind, "secret": secret, **extra}, headers=system.auth()
    )
    assert resp.status_code == 201, resp.text
    assert secret not in resp.text
    return secret


async def route(system: System, name: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await system.http.post(
        "/api/v1/event-routes", json={"name": name, **body}, headers=system.auth()
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def release(version: str) -> bytes:
    payload = {
        "action": "published",
        "release": {"tag_name": version, "name": f"Release {version}"},
        "repository": {"full_name": "acme/demo"},
    }
    return json.dumps(payload).encode()


async def github(
    system: System,
    secret: str | None,
    body: bytes,
    delivery: str,
    *,
    event: str = "release",
    to: str = "gh",
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret.encode(), body)
    return await system.http.post(f"/api/v1/webhooks/{to}", content=body, headers=headers)


async def deployments_of(system: System, name: str) -> list[dict[str, Any]]:
    resp = await system.http.get(
        f"/api/v1/deployments?component={name}&limit=200", headers=system.auth()
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def release_route(system: System, name: str) -> None:
    await route(
        system,
        "release-to-staging",
        {
            "match": {"type": "com.github.release", "data": {"action": "published"}},
            "start": {
                "workflow_type": "deployment",
                "input": {
                    "component": name,
                    "version": "${data.release.tag_name}",
                    "environment": "staging",
                    "strategy": CANARY,
                },
            },
        },
    )


async def test_a_signed_release_starts_one_canary_and_a_replay_starts_nothing(
    api: System,
) -> None:
    name = await component(api)
    secret = await source(api, "gh")
    await release_route(api, name)
    delivery = str(uuid.uuid4())

    first = await github(api, secret, release("1.4.0"), delivery)
    assert first.status_code == 202, first.text
    kept = first.json()
    assert kept["type"] == "com.github.release"
    assert kept["source"] == "/webhooks/gh" and kept["subject"] == "acme/demo"
    assert kept["matched"] == ["release-to-staging"]
    [outcome] = kept["outcomes"]
    assert outcome["result"] == "started", outcome
    [deployment] = await deployments_of(api, name)
    assert deployment["id"] == outcome["deployment_id"]
    assert deployment["version"] == "1.4.0" and deployment["environment"] == "staging"
    assert deployment["strategy"] == "canary"
    assert deployment["initiator"] == "route:release-to-staging"

    again = await github(api, secret, release("1.4.0"), delivery)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == kept["id"]
    assert again.json()["outcomes"] == kept["outcomes"]
    assert len(await deployments_of(api, name)) == 1


async def test_a_wrong_or_missing_signature_is_401_and_starts_nothing(api: System) -> None:
    name = await component(api)
    secret = await source(api, "gh")
    await release_route(api, name)
    body = release("2.0.0")

    wrong = await github(api, "not-the-secret-at-all", body, str(uuid.uuid4()))
    assert wrong.status_code == 401, wrong.text
    assert "signature" in wrong.json()["error"]["message"]
    missing = await github(api, None, body, str(uuid.uuid4()))
    assert missing.status_code == 401, missing.text
    altered = await github(api, secret, body, str(uuid.uuid4()))
    assert altered.status_code == 202
    # The signature covers the exact bytes: one more space is another body.
    tampered = body.replace(b'"2.0.0"', b'"2.0.1"')
    headers = {
        "X-GitHub-Event": "release",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(secret.encode(), body),
    }
    forged = await api.http.post("/api/v1/webhooks/gh", content=tampered, headers=headers)
    assert forged.status_code == 401

    assert [d["version"] for d in await deployments_of(api, name)] == ["2.0.0"]
    events = await api.http.get("/api/v1/events", headers=api.auth())
    assert len(events.json()["items"]) == 1
    unknown = await github(api, secret, body, str(uuid.uuid4()), to="nobody")
    assert unknown.status_code == 404


async def test_twenty_concurrent_copies_of_a_delivery_start_one_deployment(api: System) -> None:
    name = await component(api)
    secret = await source(api, "gh")
    await release_route(api, name)
    delivery = str(uuid.uuid4())

    began = time.perf_counter()
    answers = await asyncio.gather(
        *(github(api, secret, release("3.0.0"), delivery) for _ in range(20))
    )
    elapsed = time.perf_counter() - began
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 19 + [202], [a.text for a in answers if a.status_code >= 300]
    deployments = await deployments_of(api, name)
    print(
        f"20 concurrent copies of one delivery: {len(deployments)} deployment(s) started, "
        f"all answered in {elapsed:.2f} s"
    )
    assert len(deployments) == 1
    events = await api.http.get("/api/v1/events", headers=api.auth())
    assert len(events.json()["items"]) == 1


async def test_an_hmac_source_signs_like_github_with_its_own_headers(api: System) -> None:
    secret = await source(api, "ci", kind="hmac", event_type="com.acme.ci.build")
    body = json.dumps({"status": "green"}).encode()
    delivery = str(uuid.uuid4())
    headers = {"X-Delivery-Id": delivery, "X-Signature-256": signature(secret.encode(), body)}
    resp = await api.http.post("/api/v1/webhooks/ci", content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    assert resp.json()["type"] == "com.acme.ci.build"
    assert resp.json()["event_id"] == delivery
    assert resp.json()["matched"] == []
    no_id = {"X-Signature-256": signature(secret.encode(), body)}
    refused = await api.http.post("/api/v1/webhooks/ci", content=body, headers=no_id)
    assert refused.status_code == 422
    assert "x-delivery-id" in refused.json()["error"]["message"]


async def test_the_source_secret_is_write_only_and_rotates(
    api: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = await source(api, "gh")
    shown = [
        (await api.http.get(SOURCES, headers=api.auth())).text,
        (await api.http.get(f"{SOURCES}/gh", headers=api.auth())).text,
    ]
    new_secret = f"rotated-{uuid.uuid4().hex}"
    rotated = await api.http.post(
        f"{SOURCES}/gh/rotate", json={"secret": new_secret}, headers=api.auth()
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret_version"] == 2
    shown.append(rotated.text)

    old = await github(api, secret, release("1.0.0"), str(uuid.uuid4()), event="ping")
    assert old.status_code == 401
    new = await github(api, new_secret, release("1.0.0"), str(uuid.uuid4()), event="ping")
    assert new.status_code == 202, new.text
    shown.append(new.text)
    shown.append((await api.http.get("/api/v1/audit?limit=1000", headers=api.auth())).text)

    dump = await store_text(api)
    for text in [*shown, dump, caplog.text]:
        assert secret not in text and new_secret not in text
        assert "sha256=" not in text

    deleted = await api.http.delete(f"{SOURCES}/gh", headers=api.auth())
    assert deleted.status_code == 204
    gone = await github(api, new_secret, release("1.0.0"), str(uuid.uuid4()), event="ping")
    assert gone.status_code == 404


async def test_only_admins_configure_sources(api: System) -> None:
    operator = await api.key("operator")
    body = {"name": "gh", "kind": "github", "secret": "x" * 32}
    resp = await api.http.post(SOURCES, json=body, headers=api.auth(operator))
    assert resp.status_code == 403
    short = await api.http.post(SOURCES, json={**body, "secret": "short"}, headers=api.auth())
    assert short.status_code == 422
    assert "short" not in short.text


async def test_a_delivery_leaves_one_audit_event_in_the_sources_name(api: System) -> None:
    secret = await source(api, "gh")

    async def audit() -> list[dict[str, Any]]:
        resp = await api.http.get("/api/v1/audit?limit=1000", headers=api.auth())
        return list(resp.json())

    before = await audit()
    resp = await github(api, secret, release("1.0.0"), str(uuid.uuid4()), event="ping")
    assert resp.status_code == 202
    new = (await audit())[: -len(before) or None]
    assert [(e["action"], e["actor"]) for e in new] == [("event.received", "webhook:gh")]
    assert new[0]["request_id"] == resp.headers["x-request-id"]
    refused = await github(api, "wrong-secret-0123456789", release("1.0.0"), str(uuid.uuid4()))
    assert refused.status_code == 401
    assert len(await audit()) == len(before) + 1
