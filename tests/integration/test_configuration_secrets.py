"""Secret configuration entries against a real OpenBao: the value goes to Vault only, and no
answer, error, log line, audit event or store row ever holds it; Vault down is a 503 that
names Vault, and then nothing is written anywhere."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from core.db.engine import make_engine
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

URL = "/api/v1/configuration"
RUNTIME = {"command": ["serve", "--port", "{port}"]}


@pytest.fixture
async def api(make_system: Callable[..., Any], openbao: OpenBaoServer) -> System:
    system: System = await make_system(
        worker=False, vault_url=openbao.url, vault_token=openbao.token
    )
    spec = {
        "name": "api",
        "runtime": RUNTIME,
        "config_schema": {"properties": {"db.password": {"type": "string", "minLength": 12}}},
    }
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    return system


async def store_text(system: System) -> str:
    """Every row of every table of the store, as text."""
    engine = make_engine(system.settings)
    try:
        async with engine.connect() as conn:
            metadata = MetaData()
            await conn.run_sync(metadata.reflect)
            rows = []
            for table in metadata.sorted_tables:
                rows += [repr(r) for r in (await conn.execute(select(table))).all()]
            return "\n".join(rows)
    finally:
        await engine.dispose()


async def everything_shown(system: System) -> str:
    """What any caller can read about configuration and audit, as text."""
    texts = []
    for url in (
        f"{URL}/db.password?component=api&environment=prod",
        f"{URL}/db.password/versions?component=api&environment=prod",
        f"{URL}?component=api&environment=prod",
        "/api/v1/audit?limit=1000",
    ):
        resp = await system.http.get(url, headers=system.auth())
        assert resp.status_code == 200, (url, resp.text)
        texts.append(resp.text)
    return "\n".join(texts)


async def test_a_secret_value_lives_in_vault_only(
    api: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    values = [f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"]
    body: dict[str, Any] = {"scope": {"component": "api", "environment": "prod"}, "secret": True}
    answers = []
    for value in values:
        resp = await api.http.put(
            f"{URL}/db.password", json={**body, "value": value}, headers=api.auth()
        )
        assert resp.status_code in (200, 201), resp.text
        answers.append(resp)
    assert answers[1].json()["value"] == "<secret v2>"
    assert answers[1].json()["secret"] is True

    viewer = await api.key("viewer", "v")
    read = await api.http.get(
        f"{URL}/db.password?component=api&environment=prod", headers=api.auth(viewer)
    )
    assert read.json()["value"] == "<secret v2>"
    versions = await api.http.get(
        f"{URL}/db.password/versions?component=api&environment=prod", headers=api.auth()
    )
    assert [d["diff"] for d in versions.json()] == [
        [{"path": "$", "op": "changed", "before": None, "after": None}],
        [{"path": "$", "op": "added", "before": None, "after": None}],
    ]

    short = await api.http.put(
        f"{URL}/db.password", json={**body, "value": "tiny-secret"}, headers=api.auth()
    )
    assert short.status_code == 422 and "minLength" in short.text

    secrets = api.http._transport.app.state.secrets  # type: ignore[attr-defined]
    assert await secrets.read("config/api/prod/db.password") == values[1]
    assert await secrets.read("config/api/prod/db.password", 1) == values[0]

    shown = await everything_shown(api) + short.text + "".join(a.text for a in answers)
    stored = await store_text(api)
    for value in [*values, "tiny-secret"]:
        assert value not in shown
        assert value not in stored
        assert value not in caplog.text
    assert "config/api/prod/db.password" in stored, "the store keeps where the value is"


async def test_vault_down_is_503_naming_vault_and_nothing_is_written(
    api: System, openbao: OpenBaoServer
) -> None:
    before = await store_text(api)
    await openbao.stop()
    resp = await api.http.put(
        f"{URL}/db.password",
        json={"value": "x" * 20, "scope": {"component": "api"}, "secret": True},
        headers=api.auth(),
    )
    assert resp.status_code == 503, resp.text
    assert "Vault" in resp.json()["error"]["message"]
    assert await store_text(api) == before
    missing = await api.http.get(f"{URL}/db.password/versions?component=api", headers=api.auth())
    assert missing.status_code == 404
    plain = await api.http.put(f"{URL}/plain", json={"value": 1}, headers=api.auth())
    assert plain.status_code == 201, "entries that are not secret do not need Vault"
