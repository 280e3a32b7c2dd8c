"""The `openbao` fixture serves the Vault API with its root token."""

from __future__ import annotations

import httpx

from tests.integration.openbao_fixture import OpenBaoServer


async def test_openbao_fixture_serves_kv_v2_with_its_root_token(openbao: OpenBaoServer) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        headers = {"X-Vault-Token": openbao.token}
        resp = await http.get(f"{openbao.url}/v1/sys/mounts", headers=headers)
        assert resp.status_code == 200
        assert resp.json()["data"]["secret/"]["options"]["version"] == "2"
        denied = await http.get(f"{openbao.url}/v1/sys/mounts", headers={"X-Vault-Token": "x"})
        assert denied.status_code == 403
