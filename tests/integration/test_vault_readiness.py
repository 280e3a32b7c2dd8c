"""/ready reports Vault when one is configured, and names it (without details) when it fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System


async def test_ready_reports_a_configured_vault_and_names_it_when_it_stops(
    make_system: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    system: System = await make_system(
        worker=False, vault_url=openbao.url, vault_token=openbao.token
    )
    ready = await system.http.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["dependencies"] == {"store": "ok", "temporal": "ok", "vault": "ok"}

    await openbao.stop()
    down = await system.http.get("/ready")
    assert down.status_code == 503
    assert down.json()["dependencies"]["vault"] == "unreachable"
    assert down.json()["message"] == "not reachable: vault"
    assert openbao.token not in down.text and openbao.url not in down.text


async def test_ready_fails_on_a_vault_that_refuses_the_token(
    make_system: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    system: System = await make_system(
        worker=False, vault_url=openbao.url, vault_token="not-the-token"
    )
    ready = await system.http.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["dependencies"]["vault"] == "unreachable"
    assert "not-the-token" not in ready.text
