"""Configuration reaches instances at the edge: the ensure-instances activity resolves the
set's revision from the store and reads secret values from a real OpenBao, and the local
provider starts real processes with them (read back through /proc) while keeping only the
revision on disk. A Vault that stops mid-rollout pauses the step; nothing starts without its
secrets, and the step finishes once Vault is back."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.infrastructure.activities import InfrastructureActivities
from activities.infrastructure.local.orphans import target_processes
from activities.infrastructure.local.provider import LocalProvider
from cli.openbao import EmbeddedVault, embedded_vault
from cli.processes import free_port, port_in_use
from core.db.engine import make_engine, sessions
from core.models.infrastructure import InstanceSetSpec, SetInfo
from core.settings import Settings
from core.vault import open_secret_store
from tests.integration.local_infra import demo_component
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.support import wait_for

URL = "/api/v1/configuration"


@dataclass
class Edge:
    """The API (to write configuration) and the activities a worker runs, on one store."""

    system: System
    provider: LocalProvider
    activities: InfrastructureActivities

    async def put(self, key: str, value: Any, secret: bool = False, **scope: str) -> int:
        """Write an entry; returns the revision the target demo/dev is at afterwards."""
        body = {"value": value, "secret": secret, "scope": scope}
        resp = await self.system.http.put(f"{URL}/{key}", json=body, headers=self.system.auth())
        assert resp.status_code in (200, 201), resp.text
        shown = await self.system.http.get(
            f"{URL}?component=demo&environment=dev", headers=self.system.auth()
        )
        return int(shown.json()["revision"])

    async def ensure(
        self,
        revision: int | None,
        count: int = 1,
        slot: str = "blue",
        heartbeats: list[Any] | None = None,
    ) -> SetInfo:
        spec = InstanceSetSpec(
            component="demo",
            environment="dev",
            version="v1",
            slot=slot,
            count=count,
            config_revision=revision,
        )
        env = ActivityEnvironment()
        if heartbeats is not None:
            env.on_heartbeat = lambda *details: heartbeats.append(details)
        result: SetInfo = await env.run(self.activities.ensure_instances, spec)
        return result

    def infra_files(self) -> list[Path]:
        return [p for p in (self.system.settings.home / "infra").rglob("*") if p.is_file()]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.decode().split("=", 1) for e in raw.split(b"\0") if e)


DEMO_RUNTIME = demo_component().runtime.model_dump(mode="json")


@pytest.fixture
async def make_edge(make_system: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Build an Edge against a Vault (url, token); its instances stop at the test's end."""
    built: list[tuple[Edge, Any]] = []

    async def build(vault_url: str, vault_token: str, vault_wait_seconds: float = 60) -> Edge:
        system: System = await make_system(
            worker=False,
            vault_url=vault_url,
            vault_token=vault_token,
            vault_wait_seconds=vault_wait_seconds,
        )
        component = {"name": "demo", "runtime": DEMO_RUNTIME}
        resp = await system.http.post("/api/v1/components", json=component, headers=system.auth())
        assert resp.status_code == 201, resp.text
        engine = make_engine(system.settings)
        http = httpx.AsyncClient()
        provider = LocalProvider(system.settings.home, http, startup_timeout=30)
        activities = InfrastructureActivities(
            provider,
            sessions(engine),
            open_secret_store(system.settings),
            system.settings.vault_wait_seconds,
        )
        edge = Edge(system, provider, activities)
        built.append((edge, (engine, http)))
        return edge

    yield build
    for edge, (engine, http) in built:
        for component, environment in await edge.provider.targets():
            await edge.provider.retire(component, environment)
        await http.aclose()
        await engine.dispose()


async def test_an_instance_runs_with_its_resolved_configuration_and_secrets_from_vault(
    make_edge: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    edge: Edge = await make_edge(openbao.url, openbao.token)
    password, token = f"pw-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    await edge.put("db.pool_size", 1)
    await edge.put("db.pool_size", 5, environment="dev")
    await edge.put("log.level", "debug", component="demo")
    await edge.put("feature.flags", {"beta": True, "ratio": 0.5}, component="demo")
    await edge.put("db.pool_size", 3, environment="prod")  # another target's: not applied
    await edge.put("db.password", password, secret=True, component="demo", environment="dev")
    revision = await edge.put("api.token", token, secret=True)

    info = await edge.ensure(revision, count=2)

    assert info.config_revision == revision
    for instance in info.instances:
        assert instance.pid is not None
        env = environ(instance.pid)
        assert env["DB_POOL_SIZE"] == "5"
        assert env["LOG_LEVEL"] == "debug"
        assert env["FEATURE_FLAGS"] == '{"beta":true,"ratio":0.5}'
        assert env["DB_PASSWORD"] == password
        assert env["API_TOKEN"] == token
        assert env["R2C_CONFIG_REVISION"] == str(revision)
        assert "VAULT_TOKEN" not in env
    state = await edge.provider.state("demo", "dev")
    assert [s.config_revision for s in state.sets] == [revision]
    files = edge.infra_files()
    assert any(p.name == "state.json" for p in files)
    for path in files:
        text = path.read_bytes()
        assert password.encode() not in text and token.encode() not in text, path


async def test_a_set_asked_for_a_newer_revision_is_replaced_and_a_heal_keeps_its_revision(
    make_edge: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    edge: Edge = await make_edge(openbao.url, openbao.token)
    first = await edge.put("db.password", "old-password", secret=True, component="demo")
    started = await edge.ensure(first)
    second = await edge.put("db.password", "new-password", secret=True, component="demo")
    assert second > first

    replaced = await edge.ensure(second)

    old_pid, new_pid = started.instances[0].pid, replaced.instances[0].pid
    assert new_pid is not None and new_pid != old_pid
    assert environ(new_pid)["DB_PASSWORD"] == "new-password"
    assert environ(new_pid)["R2C_CONFIG_REVISION"] == str(second)
    target = edge.provider.files("demo", "dev").dir
    assert old_pid not in target_processes(target)

    # No revision asked (a heal, a scale-up): the set keeps the one it runs, secrets included.
    grown = await edge.ensure(None, count=2)
    assert grown.config_revision == second
    assert grown.instances[0].pid == new_pid
    added = grown.instances[1].pid
    assert added is not None and environ(added)["DB_PASSWORD"] == "new-password"


async def test_a_set_serving_traffic_is_not_switched_to_another_revision(
    make_edge: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    edge: Edge = await make_edge(openbao.url, openbao.token)
    first = await edge.put("log.level", "info", component="demo")
    await edge.ensure(first)
    await edge.provider.set_weights(demo_component(), "dev", {"blue": 100})
    second = await edge.put("log.level", "debug", component="demo")

    with pytest.raises(ApplicationError) as refused:
        await edge.ensure(second)

    assert refused.value.type == "Conflict" and refused.value.non_retryable
    assert "configuration revision" in str(refused.value)
    state = await edge.provider.state("demo", "dev")
    assert [s.config_revision for s in state.sets] == [first]


def raft_vault(home: Path, port: int) -> EmbeddedVault:
    """The embedded OpenBao of `r2c up`: raft storage on disk, so a restart on the same port
    finds its secrets again."""
    return embedded_vault(Settings(vault_port=port), home)


def two_free_ports() -> int:
    """A port whose next one is free too (raft's cluster listener takes it)."""
    for _ in range(100):
        port = free_port()
        if not port_in_use("127.0.0.1", port + 1):
            return port
    raise OSError("no two free ports in a row")


async def test_a_vault_outage_pauses_starting_and_nothing_starts_without_its_secrets(
    make_edge: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    port = two_free_ports()
    vault = raft_vault(tmp_path / "vault-home", port)
    await vault.start()
    try:
        edge: Edge = await make_edge(vault.url, vault.token)
        secret = f"s-{uuid.uuid4().hex}"
        revision = await edge.put("db.password", secret, secret=True, component="demo")
        await vault.child.stop()

        beats: list[Any] = []
        step = asyncio.create_task(edge.ensure(revision, heartbeats=beats))

        async def waits_seen() -> int:
            return caplog.text.count("waiting for Vault")

        await wait_for(waits_seen, lambda n: n >= 3, within=30, what="the step to wait for Vault")
        target = edge.provider.files("demo", "dev")
        assert not step.done()
        assert beats, "the step must heartbeat while it waits"
        assert target_processes(target.dir) == []
        assert not target.state_file.exists()  # not even a router: nothing was started

        vault = raft_vault(tmp_path / "vault-home", port)
        await vault.start()
        info = await asyncio.wait_for(step, 60)

        pid = info.instances[0].pid
        assert pid is not None
        assert environ(pid)["DB_PASSWORD"] == secret
        assert environ(pid)["R2C_CONFIG_REVISION"] == str(revision)
        assert secret not in caplog.text
    finally:
        await vault.child.stop()


async def test_a_vault_away_longer_than_the_wait_fails_the_step_for_good_naming_the_setting(
    make_edge: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    edge: Edge = await make_edge(openbao.url, openbao.token, vault_wait_seconds=1)
    revision = await edge.put("db.password", "never-started", secret=True, component="demo")
    await openbao.stop()

    with pytest.raises(ApplicationError) as failed:
        await edge.ensure(revision)

    assert failed.value.type == "DependencyUnavailable" and failed.value.non_retryable
    assert "R2C_VAULT_WAIT_SECONDS" in str(failed.value)
    assert "never-started" not in str(failed.value)
    assert not edge.provider.files("demo", "dev").state_file.exists()


async def test_a_set_that_runs_what_is_asked_is_kept_while_vault_is_away_but_not_grown(
    make_edge: Callable[..., Any], openbao: OpenBaoServer
) -> None:
    edge: Edge = await make_edge(openbao.url, openbao.token, vault_wait_seconds=2)
    revision = await edge.put("db.password", "kept-secret", secret=True, component="demo")
    running = await edge.ensure(revision, count=2)
    await openbao.stop()

    # A compensation restoring the set, or a scale-down, needs no secret: done at once.
    restored = await edge.ensure(revision, count=2)
    assert [i.pid for i in restored.instances] == [i.pid for i in running.instances]
    shrunk = await edge.ensure(None, count=1)
    assert [i.pid for i in shrunk.instances] == [running.instances[0].pid]

    # Growing would start an instance without its secrets: the step waits, then fails.
    with pytest.raises(ApplicationError) as failed:
        await edge.ensure(None, count=2)
    assert failed.value.type == "DependencyUnavailable"
    pids = target_processes(edge.provider.files("demo", "dev").dir)
    assert running.instances[1].pid not in pids
    state = await edge.provider.state("demo", "dev")
    assert [len(s.instances) for s in state.sets] == [1]
