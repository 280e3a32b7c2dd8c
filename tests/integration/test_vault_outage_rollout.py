"""A Vault outage during a real roll-out: the API starts a configuration roll-out of demo/dev,
whose configuration holds a secret, through a real worker; the raft-backed OpenBao (the one
`r2c up` embeds, so a restart on the same port keeps its secrets) is stopped before the new
instances start. The deployment waits, progressing (neither failed nor rolled back), no
instance of the new revision exists and the old ones keep serving; once OpenBao is back on
the same port the roll-out finishes and the new instances hold the secret."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from activities.infrastructure.local.orphans import target_processes
from cli.openbao import EmbeddedVault, embedded_vault
from cli.processes import free_port, port_in_use
from core.settings import Settings
from tests.integration.deploying import FINAL, first_version, get, register_demo, until, versions
from tests.integration.system import System
from tests.support import wait_for

URL = "/api/v1/configuration"
DEMO_DEV = {"component": "demo", "environment": "dev"}
WAITING = "waiting for Vault"


def raft_vault(home: Path, port: int) -> EmbeddedVault:
    """The embedded OpenBao of `r2c up`: raft storage under `home`, so a server started again
    on the same port finds its secrets and its root token."""
    return embedded_vault(Settings(vault_port=port), home)


def two_free_ports() -> int:
    """A port whose next one is free too (raft's cluster listener takes it)."""
    for _ in range(100):
        port = free_port()
        if not port_in_use("127.0.0.1", port + 1):
            return port
    raise OSError("no two free ports in a row")


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone meanwhile
        return {}
    return dict(e.decode().split("=", 1) for e in raw.split(b"\0") if b"=" in e)


def instance_environments(system: System) -> list[dict[str, str]]:
    """The environment of every live instance of demo/dev (the router has no R2C_INSTANCE)."""
    target = system.settings.home.resolve() / "infra" / "demo" / "dev"
    found = [environ(pid) for pid in target_processes(target)]
    return [env for env in found if "R2C_INSTANCE" in env]


class RaftVault:
    """A raft OpenBao in `home` on `port`, stopped and started again like a real outage."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.server = raft_vault(home, port)

    async def start(self) -> None:
        self.server = raft_vault(self.home, self.port)
        await self.server.start()

    async def stop(self) -> None:
        await self.server.child.stop()


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[RaftVault]:
    server = RaftVault(tmp_path / "vault-home", two_free_ports())
    await server.start()
    yield server
    await server.stop()


async def put(system: System, key: str, value: Any, **extra: Any) -> dict[str, Any]:
    body = {"value": value, "scope": DEMO_DEV, **extra}
    resp = await system.http.put(f"{URL}/{key}", json=body, headers=system.auth())
    assert resp.status_code in (200, 201), resp.text
    return dict(resp.json())


async def test_a_rollout_waits_for_a_stopped_vault_progressing_and_finishes_once_it_is_back(
    make_system: Callable[..., Any],
    vault: RaftVault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    system: System = await make_system(
        vault_url=vault.server.url, vault_token=vault.server.token, vault_wait_seconds=300
    )
    await register_demo(system)
    password = f"pw-{uuid.uuid4().hex}"
    await put(system, "db.password", password, secret=True)
    first = await put(system, "greeting", "hello")
    endpoint = await first_version(system)
    old = await asyncio.to_thread(instance_environments, system)
    assert len(old) == 2 and all(e["DB_PASSWORD"] == password for e in old), old

    await vault.stop()
    stopped = time.monotonic()
    # A setting that is no secret is written without Vault; the new revision still holds
    # the password, so its instances cannot start until Vault answers again.
    change = await put(system, "greeting", "bonjour", roll_out={"strategy": {"type": "rolling"}})
    (rollout,) = change["rollouts"]
    new = str(change["revision"])
    assert change["revision"] > first["revision"]

    async def waits_logged() -> int:
        return caplog.text.count(WAITING)

    # Three waits (0.5, 1 and 2 s apart: the step backs off, it does not give up); at the
    # fifth the next try would be 8 s away, which the test would then wait out.
    await wait_for(
        waits_logged,
        lambda n: n >= 3,
        within=60,
        what="the roll-out's step waiting for Vault",
    )
    during = await get(system, rollout["deployment_id"])
    assert during["state"] == "progressing", during
    running = await asyncio.to_thread(instance_environments, system)
    assert all(e.get("R2C_CONFIG_REVISION") != new for e in running), running
    assert {e["R2C_CONFIG_REVISION"] for e in running} == {str(first["revision"])}
    assert await versions(endpoint) == {"v1"}, "the old instances keep serving"

    await vault.start()
    restarted = time.monotonic()
    done = await until(system, rollout["deployment_id"], *FINAL, within=120)
    finished = time.monotonic()

    assert done["state"] == "succeeded", done
    assert done["config_revision"] == change["revision"]
    envs = await wait_for(
        lambda: asyncio.to_thread(instance_environments, system),
        lambda found: len(found) == 2 and all(e.get("R2C_CONFIG_REVISION") == new for e in found),
        within=30,
        what="both instances running the new revision",
    )
    assert all(e["DB_PASSWORD"] == password and e["GREETING"] == "bonjour" for e in envs)
    assert password not in caplog.text
    print(
        f"vault outage roll-out: Vault away {restarted - stopped:.1f}s"
        f" ({caplog.text.count(WAITING)} waits logged), succeeded"
        f" {finished - restarted:.1f}s after Vault was back, {finished - stopped:.1f}s in all"
    )
