"""The local provider with real processes and real traffic through its router."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from activities.infrastructure.local import processes
from activities.infrastructure.local.orphans import target_processes
from activities.infrastructure.local.provider import LocalProvider
from cli.load import LoadReport, run_load
from core.errors import ConflictError, InvalidInputError
from core.models.infrastructure import InstanceState
from tests.integration.local_infra import demo_component, ensure
from tests.support import wait_for


def pids_of(provider: LocalProvider, env: str = "dev") -> set[int]:
    return set(target_processes(provider.files("demo", env).dir))


async def versions_seen(url: str, n: int) -> list[str]:
    async with httpx.AsyncClient() as http:
        return [(await http.get(url)).headers["x-component-version"] for _ in range(n)]


async def test_ensure_twice_starts_nothing_twice(provider: LocalProvider) -> None:
    component = demo_component()
    first = await provider.ensure_instances(component, ensure("stable", "v1", 2))
    before = pids_of(provider)
    again = await provider.ensure_instances(component, ensure("stable", "v1", 2))
    assert [i.pid for i in again.instances] == [i.pid for i in first.instances]
    assert pids_of(provider) == before
    assert len(before) == 3  # two instances and the router
    state = await provider.set_weights(component, "dev", {"stable": 100})
    assert state.endpoint is not None and state.router_alive
    assert set(await versions_seen(state.endpoint + "/", 4)) == {"v1"}


async def test_weights_shift_under_load_with_no_failed_request(provider: LocalProvider) -> None:
    component = demo_component()
    await provider.ensure_instances(component, ensure("stable", "v1", 2))
    await provider.ensure_instances(component, ensure("canary", "v2", 1))
    state = await provider.set_weights(component, "dev", {"stable": 100, "canary": 0})
    assert state.endpoint is not None
    load = asyncio.create_task(run_load(state.endpoint + "/", rps=150, duration=4))
    for canary in (10, 50, 100):
        await asyncio.sleep(0.8)  # let traffic flow at each weight; the load task is the clock
        await provider.set_weights(component, "dev", {"stable": 100 - canary, "canary": canary})
    report: LoadReport = await load
    assert report.failed == 0, report.errors
    assert report.requests == 600
    assert report.by_version["v1"].requests > 0 and report.by_version["v2"].requests > 0
    # At 100% nothing reaches the stable set any more.
    assert set(await versions_seen(state.endpoint + "/", 10)) == {"v2"}


async def test_weights_are_exact_proportions(provider: LocalProvider) -> None:
    component = demo_component()
    await provider.ensure_instances(component, ensure("stable", "v1", 1))
    await provider.ensure_instances(component, ensure("canary", "v2", 1))
    state = await provider.set_weights(component, "dev", {"stable": 90, "canary": 10})
    assert state.endpoint is not None
    seen = await versions_seen(state.endpoint + "/", 100)
    assert seen.count("v2") == 10


async def test_removing_a_set_leaves_no_process(provider: LocalProvider) -> None:
    component = demo_component()
    await provider.ensure_instances(component, ensure("stable", "v1", 1))
    canary = await provider.ensure_instances(component, ensure("canary", "v2", 2))
    await provider.set_weights(component, "dev", {"stable": 50, "canary": 50})
    with pytest.raises(ConflictError):
        await provider.remove_set("demo", "dev", "canary")  # still serves traffic
    await provider.set_weights(component, "dev", {"stable": 100, "canary": 0})
    await provider.remove_set("demo", "dev", "canary")
    await provider.remove_set("demo", "dev", "canary")  # idempotent
    remaining = pids_of(provider)
    assert all(i.pid not in remaining for i in canary.instances)
    assert all(
        not processes.alive(i.pid, processes.start_ticks(i.pid) or -1) for i in canary.instances
    )
    assert len(remaining) == 2  # the stable instance and the router
    state = await provider.state("demo", "dev")
    assert [s.slot for s in state.sets] == ["stable"] and state.weights == {"stable": 100}


async def test_a_crashed_instance_is_ejected_and_reported(provider: LocalProvider) -> None:
    component = demo_component()
    stable = await provider.ensure_instances(component, ensure("stable", "v1", 2))
    state = await provider.set_weights(component, "dev", {"stable": 100})
    assert state.endpoint is not None
    victim = stable.instances[0]
    os.kill(victim.pid, signal.SIGKILL)

    async def victim_state() -> tuple[InstanceState, bool | None]:
        current = await provider.state("demo", "dev")
        inst = next(i for i in current.sets[0].instances if i.instance_id == victim.instance_id)
        return inst.state, inst.healthy

    assert await wait_for(victim_state, lambda s: s == (InstanceState.DEAD, False)) == (
        InstanceState.DEAD,
        False,
    )
    report = await run_load(state.endpoint + "/", rps=100, duration=1.5)
    assert report.failed == 0, report.errors
    # The next ensure replaces it, with a new instance id and nothing else touched.
    healed = await provider.ensure_instances(component, ensure("stable", "v1", 2))
    ids = [i.instance_id for i in healed.instances]
    assert victim.instance_id not in ids and stable.instances[1].instance_id in ids


async def test_slot_version_change_is_refused_while_it_serves(provider: LocalProvider) -> None:
    component = demo_component()
    await provider.ensure_instances(component, ensure("stable", "v1", 1))
    await provider.set_weights(component, "dev", {"stable": 100})
    with pytest.raises(ConflictError):
        await provider.ensure_instances(component, ensure("stable", "v2", 1))
    with pytest.raises(InvalidInputError):
        await provider.set_weights(component, "dev", {"stable": 60, "nope": 40})
    with pytest.raises(InvalidInputError):
        await provider.set_weights(component, "dev", {"stable": 90})


async def test_environment_overrides_make_a_version_bad(provider: LocalProvider) -> None:
    component = demo_component()
    await provider.ensure_instances(
        component, ensure("canary", "v2", 1, env_overrides={"DEMO_ERROR_RATE": "1.0"})
    )
    state = await provider.set_weights(component, "dev", {"canary": 100})
    assert state.endpoint is not None and state.metrics_url is not None
    async with httpx.AsyncClient() as http:
        assert (await http.get(state.endpoint + "/")).status_code == 500
        metrics = (await http.get(state.metrics_url)).text
    assert (
        'r2c_router_requests_total{component="demo",environment="dev",version="v2",code="500"} 1'
        in metrics
    )
    labels = 'component="demo",environment="dev",version="v2"'
    assert f"r2c_router_request_duration_seconds_count{{{labels}}} 1" in metrics


async def test_a_bad_command_fails_with_its_log(provider: LocalProvider) -> None:
    component = demo_component(command=["r2c", "demo", "serve", "--port", "{port}", "--bogus"])
    with pytest.raises(Exception) as caught:
        await provider.ensure_instances(component, ensure("stable", "v1", 1))
    assert "exited while starting" in str(caught.value)
    assert "--bogus" in caught.value.details["log_tail"]  # type: ignore[attr-defined]


async def test_a_dead_router_comes_back_on_its_port(provider: LocalProvider) -> None:
    component = demo_component()
    await provider.ensure_instances(component, ensure("stable", "v1", 1))
    state = await provider.set_weights(component, "dev", {"stable": 100})
    assert state.router_pid is not None and state.endpoint is not None
    os.kill(state.router_pid, signal.SIGKILL)
    await wait_for(lambda: provider.state("demo", "dev"), lambda s: not s.router_alive)
    assert await provider.reconcile() == ["demo/dev"]
    after = await provider.state("demo", "dev")
    assert after.router_alive and after.endpoint == state.endpoint
    assert set(await versions_seen(after.endpoint + "/", 3)) == {"v1"}


async def test_retire_stops_everything(provider: LocalProvider) -> None:
    component = demo_component()
    await provider.ensure_instances(component, ensure("stable", "v1", 2))
    await provider.ensure_instances(component, ensure("stable", "v1", 1, env="prod"))
    assert await provider.environments("demo") == ["dev", "prod"]
    dev_pids, prod_pids = pids_of(provider, "dev"), pids_of(provider, "prod")
    await provider.retire("demo", "dev")
    assert await provider.environments("demo") == ["prod"]
    assert not any(processes.start_ticks(p) for p in dev_pids)
    await provider.retire("demo")
    assert await provider.environments("demo") == []
    assert not any(processes.start_ticks(p) for p in prod_pids)


DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import httpx
    from activities.infrastructure.local.provider import LocalProvider
    from tests.integration.local_infra import demo_component, ensure

    async def main():
        async with httpx.AsyncClient() as http:
            provider = LocalProvider(Path(sys.argv[1]), http)
            component = demo_component()
            await provider.ensure_instances(component, ensure("stable", "v1", 2))
            await provider.set_weights(component, "dev", {"stable": 100})
            print("ready", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_killing_the_worker_leaves_instances_and_router_serving(
    provider: LocalProvider, tmp_path: Path
) -> None:
    """A process that drives the provider, as the worker does, is SIGKILLed: everything it
    started keeps serving, and a fresh provider (a restarted worker) finds it all again."""
    driver = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DRIVER,
        str(tmp_path / "home"),
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert driver.stdout is not None
    line = await asyncio.wait_for(driver.stdout.readline(), 60)
    assert line.strip() == b"ready"
    state = await provider.state("demo", "dev")
    assert state.endpoint is not None
    load = asyncio.create_task(run_load(state.endpoint + "/", rps=100, duration=2))
    await asyncio.sleep(0.5)
    driver.send_signal(signal.SIGKILL)
    await driver.wait()
    report = await load
    assert report.failed == 0 and report.requests == 200, report.errors
    found = await provider.state("demo", "dev")
    assert found.router_alive and found.router_pid == state.router_pid
    assert [i.state for i in found.sets[0].instances] == [InstanceState.RUNNING] * 2
    again = await provider.ensure_instances(demo_component(), ensure("stable", "v1", 2))
    assert {i.pid for i in again.instances} == {i.pid for i in state.sets[0].instances}


async def test_a_missing_program_is_a_clear_final_error(provider: LocalProvider) -> None:
    component = demo_component(command=["no-such-program-r2c", "--port", "{port}"])
    with pytest.raises(InvalidInputError) as caught:
        await provider.ensure_instances(component, ensure("stable", "v1", 1))
    assert "cannot run 'no-such-program-r2c'" in caught.value.message
