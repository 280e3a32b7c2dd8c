"""The router's own endpoints live on an admin port; its public port belongs to the
application, `/_r2c/*` included. Real instances behind a real router."""

from __future__ import annotations

import asyncio
import json

import httpx

from activities.infrastructure.local import processes
from activities.infrastructure.local.launch import cli_argv, router_env
from activities.infrastructure.local.provider import LocalProvider
from core.models.infrastructure import InstanceSetSpec
from tests.integration.local_infra import demo_component
from tests.support import wait_for


async def serving(provider: LocalProvider) -> None:
    component = demo_component()
    await provider.ensure_instances(
        component,
        InstanceSetSpec(component="demo", environment="dev", version="v1", slot="blue", count=1),
    )
    await provider.set_weights(component, "dev", {"blue": 100})


async def test_the_public_port_sends_r2c_paths_to_the_application(
    provider: LocalProvider,
) -> None:
    await serving(provider)
    state = await provider.state("demo", "dev")
    assert state.endpoint is not None
    async with httpx.AsyncClient() as http:
        for path in ("/_r2c/status", "/_r2c/metrics"):
            answer = await http.get(state.endpoint + path)
            # The demo application's answer (its version), not the router's status.
            assert answer.status_code == 200
            assert answer.headers["x-component-version"] == "v1"
            assert "generation" not in answer.json()


async def test_the_admin_port_answers_status_and_metrics(provider: LocalProvider) -> None:
    await serving(provider)
    state = await provider.state("demo", "dev")
    assert state.endpoint is not None and state.admin_endpoint is not None
    assert state.metrics_url == state.admin_endpoint + "/metrics"
    assert state.admin_endpoint != state.endpoint
    async with httpx.AsyncClient() as http:
        await http.get(state.endpoint + "/")
        status = (await http.get(state.admin_endpoint + "/status")).json()
        metrics = (await http.get(state.metrics_url)).text
    assert status["generation"] == state.generation
    assert [b["instance_id"] for b in status["backends"]] == ["demo.dev.blue.1"]
    assert 'version="v1",code="200"} 1' in metrics


async def test_a_state_without_an_admin_port_still_loads_and_its_router_is_replaced(
    provider: LocalProvider,
) -> None:
    """A target set up before routers had an admin port: its router (which answers status on
    its public port) is replaced on the same public port by one with an admin port."""
    await serving(provider)
    files = provider.files("demo", "dev")
    before = await provider.state("demo", "dev")
    assert before.router_pid is not None and before.endpoint is not None
    port = int(before.endpoint.rsplit(":", 1)[1])
    # Make it the past: a router without --admin-port, and a state.json without the field.
    await processes.stop(before.router_pid, processes.start_ticks(before.router_pid) or -1)
    argv = cli_argv("router", "--table", str(files.routes_file), "--port", str(port))
    old = await asyncio.create_subprocess_exec(
        *argv, env=router_env(files.dir), start_new_session=True
    )
    try:
        raw = json.loads(files.state_file.read_text())
        del raw["router"]["admin_port"]
        raw["router"].update(pid=old.pid, ticks=processes.start_ticks(old.pid))
        files.state_file.write_text(json.dumps(raw))

        loaded = await provider.state("demo", "dev")
        assert loaded.router_alive and loaded.admin_endpoint is None
        assert loaded.endpoint == before.endpoint

        assert await provider.reconcile() == ["demo/dev"]
        await asyncio.wait_for(old.wait(), 15)  # the old router was stopped
    finally:
        if old.returncode is None:
            old.kill()
            await old.wait()
    after = await wait_for(
        lambda: provider.state("demo", "dev"), lambda s: s.router_alive, what="new router"
    )
    assert after.endpoint == before.endpoint and after.admin_endpoint is not None
    assert after.router_pid not in (None, old.pid)
    async with httpx.AsyncClient() as http:
        answer = await http.get(after.endpoint + "/")
        assert answer.headers["x-component-version"] == "v1"
        assert (await http.get(after.admin_endpoint + "/status")).status_code == 200
