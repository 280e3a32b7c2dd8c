"""What reaches a process the local provider starts, and what it leaves behind: real
instances, read through /proc."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.infrastructure.local import processes
from activities.infrastructure.local.orphans import target_processes
from activities.infrastructure.local.provider import LocalProvider
from core.errors import InfrastructureError
from core.models.infrastructure import InstanceSetSpec
from tests.integration.local_infra import demo_component
from tests.support import wait_for

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-r2c-test",
    "PGPASSWORD": "pg-secret-r2c-test",
    "GITHUB_TOKEN": "gh-secret-r2c-test",
    "VAULT_TOKEN": "vault-secret-r2c-test",
}


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[LocalProvider]:
    async with httpx.AsyncClient() as http:
        local = LocalProvider(tmp_path / "home", http, startup_timeout=20)
        try:
            yield local
        finally:
            for component, environment in await local.targets():
                await local.retire(component, environment)


def spec(count: int = 1, **kw: Any) -> InstanceSetSpec:
    return InstanceSetSpec(
        component="demo", environment="dev", version="v1", slot="blue", count=count, **kw
    )


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.decode().split("=", 1) for entry in raw.split(b"\0") if entry)
    return dict(pairs)


def held_by_instances(provider: LocalProvider) -> dict[int, str]:
    return {p: o for p, o in provider.ports.held().items() if not o.startswith("router")}


async def test_worker_secrets_never_reach_an_instance_or_a_router(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    info = await provider.ensure_instances(demo_component(), spec())
    state = await provider.state("demo", "dev")
    assert state.router_pid is not None
    for pid in (info.instances[0].pid, state.router_pid):
        env = environ(pid)
        assert not set(SECRETS) & set(env), sorted(env)
        assert not any(v in SECRETS.values() for v in env.values())
        assert env["PATH"] == os.environ["PATH"]
    assert environ(info.instances[0].pid)["R2C_INSTANCE"] == "demo.dev.blue.1"


async def test_override_values_reach_the_instance_literally(provider: LocalProvider) -> None:
    overrides = {
        "APP_CONFIG": '{"a": {"b": 1}}',
        "PADDED": "{port:>999999999}",
        "LOOKS_LIKE_A_PLACEHOLDER": "{instance}",
    }
    info = await provider.ensure_instances(demo_component(), spec(env_overrides=overrides))
    env = environ(info.instances[0].pid)
    assert {k: env[k] for k in overrides} == overrides


async def test_the_component_env_templates_are_filled_in(provider: LocalProvider) -> None:
    component = demo_component(env={"LISTEN": "127.0.0.1:{port}", "BRACES": "{{literal}}"})
    info = await provider.ensure_instances(component, spec())
    env = environ(info.instances[0].pid)
    assert env["LISTEN"] == f"127.0.0.1:{info.instances[0].port}"
    assert env["BRACES"] == "{literal}"


async def test_a_start_that_exits_gives_its_port_back(provider: LocalProvider) -> None:
    component = demo_component(command=[sys.executable, "-c", "raise SystemExit(3)", "{port}"])
    with pytest.raises(InfrastructureError, match="exited while starting"):
        await provider.ensure_instances(component, spec())
    assert held_by_instances(provider) == {}
    assert (await provider.state("demo", "dev")).sets[0].instances == []


async def test_a_start_that_never_gets_healthy_is_stopped_and_gives_its_port_back(
    tmp_path: Path,
) -> None:
    component = demo_component(
        command=[sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
        working_dir=str(tmp_path),
        health_check={"path": "/no-such-page", "interval_seconds": 0.5, "timeout_seconds": 1},
    )
    async with httpx.AsyncClient() as http:
        provider = LocalProvider(tmp_path / "home", http, startup_timeout=1.5)
        try:
            with pytest.raises(InfrastructureError, match="not healthy within"):
                await provider.ensure_instances(component, spec())
            assert held_by_instances(provider) == {}
            assert len(target_processes(provider.files("demo", "dev").dir)) == 1  # the router
        finally:
            await provider.retire("demo")


async def test_the_children_of_a_serving_instance_are_not_orphans(
    provider: LocalProvider, tmp_path: Path
) -> None:
    """The instance is a shell whose child serves (as `npm start` or gunicorn workers do);
    the next ensure on the target must leave that child alone, and still kill a real orphan."""
    serve = f"{sys.executable} -m http.server {{port}} --bind 127.0.0.1 & wait"
    component = demo_component(
        command=["/bin/sh", "-c", serve],
        working_dir=str(tmp_path),
        health_check={"path": "/", "interval_seconds": 0.5, "timeout_seconds": 1},
    )
    info = await provider.ensure_instances(component, spec())
    shell = info.instances[0]
    children = [p for p in target_processes(provider.files("demo", "dev").dir)
                if os.getsid(p) == shell.pid and p != shell.pid]  # fmt: skip
    assert children, "the shell's child is not found"
    target_dir = provider.files("demo", "dev").dir
    orphan = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import time; time.sleep(60)",
        env={**os.environ, "R2C_TARGET": str(target_dir)},
        start_new_session=True,
    )
    try:
        await provider.ensure_instances(component, spec())
        assert await asyncio.wait_for(orphan.wait(), 10) == -signal.SIGKILL
    finally:
        if orphan.returncode is None:
            orphan.kill()
            await orphan.wait()
    for child in children:
        assert processes.start_ticks(child) is not None, "a serving child was killed"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{shell.port}/")).status_code == 200


async def test_a_replaced_instance_keeps_the_overrides_of_its_set(
    provider: LocalProvider,
) -> None:
    component = demo_component()
    first = await provider.ensure_instances(component, spec(env_overrides={"X": "1"}))
    victim = first.instances[0]
    os.kill(victim.pid, signal.SIGKILL)
    await wait_for(
        lambda: provider.state("demo", "dev"),
        lambda s: s.sets[0].instances[0].state == "dead",
        what="the instance to be seen dead",
    )
    healed = await provider.ensure_instances(component, spec(env_overrides=None))
    replacement = healed.instances[0]
    assert replacement.instance_id != victim.instance_id
    assert environ(replacement.pid)["X"] == "1"
    # Grown back (as a rolling rollback does) without overrides: the set's still apply.
    grown = await provider.ensure_instances(component, spec(count=2, env_overrides=None))
    assert [environ(i.pid)["X"] for i in grown.instances] == ["1", "1"]
    # A dict replaces them for the instances started from now on.
    changed = await provider.ensure_instances(component, spec(count=3, env_overrides={"X": "2"}))
    assert environ(changed.instances[2].pid)["X"] == "2"


async def test_everything_the_provider_writes_is_private_whatever_the_umask(
    provider: LocalProvider,
) -> None:
    previous = os.umask(0)
    try:
        info = await provider.ensure_instances(demo_component(), spec())
        await provider.set_weights(demo_component(), "dev", {"blue": 100})
    finally:
        os.umask(previous)
    files = provider.files("demo", "dev")
    folders = [
        provider.root,
        files.dir.parent,
        files.dir,
        files.logs,
        provider.root / "_prometheus",
    ]
    written = [
        files.state_file,
        files.routes_file,
        provider.root / "ports.json",
        provider.root / "ports.lock",
        files.dir / "lock",
        files.logs / "router.log",
        Path(info.instances[0].log_file),
        provider.root / "_prometheus" / "demo.dev.json",
    ]
    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in folders + written}
    assert modes == {
        **{str(p): 0o700 for p in folders},
        **{str(p): 0o600 for p in written},
    }
