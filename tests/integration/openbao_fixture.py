"""A real OpenBao (Vault API) dev server per test, on a free port with a random root token.

Dev mode keeps everything in memory and starts unsealed with KV v2 at `secret/`, which is
what a test of the secret store needs; `r2c up` runs OpenBao with its data on disk instead
(cli/openbao.py, tests/e2e/test_up_vault.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.openbao import bao_binary
from cli.processes import free_port
from tests.support import wait_for


@dataclass
class OpenBaoServer:
    """A running dev server: `url` (http://127.0.0.1:PORT) and its root `token`."""

    url: str
    token: str
    log: Path
    process: asyncio.subprocess.Process

    async def stop(self) -> None:
        """Stop the server now (tests of an unreachable Vault); teardown tolerates it."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def _healthy(http: httpx.AsyncClient, server: OpenBaoServer) -> bool:
    if server.process.returncode is not None:
        raise AssertionError(
            f"bao server exited with {server.process.returncode}:\n{server.log.read_text()[-3000:]}"
        )
    try:
        return (await http.get(f"{server.url}/v1/sys/health")).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
async def openbao(tmp_path: Path) -> AsyncIterator[OpenBaoServer]:
    """A fresh, unsealed OpenBao dev server for this test (KV v2 mounted at `secret/`)."""
    port = free_port()
    token = f"root-{secrets.token_hex(16)}"
    log = tmp_path / "openbao.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            bao_binary(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={token}",
            "-dev-no-store-token",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    server = OpenBaoServer(url=f"http://127.0.0.1:{port}", token=token, log=log, process=process)
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            await wait_for(lambda: _healthy(http, server), what="openbao healthy", within=30)
        yield server
    finally:
        await server.stop()
