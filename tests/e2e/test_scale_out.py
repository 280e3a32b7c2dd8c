"""The control plane scaled out, as production runs it: two `r2c api` processes and three
worker processes on one external Temporal server (the session's, by TEMPORAL_ADDRESS) and one
PostgreSQL database. 50 deployments and 20 scheduled deployments go through both APIs in turn
while a worker at a time is SIGKILLed and restarted and API #1 is stopped halfway; then every
deployment has succeeded once, nothing is duplicated or left running, and the audit trail,
the revisions and the (shared, no-op) infrastructure agree with what was asked."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from benchmarks.bench_scale_out import Meter, run_block
from core.contracts import DEPLOYMENT_WORKFLOW
from core.temporal import connect
from tests.e2e.scale_cluster import Balancer, Cluster, register, start_cluster
from tests.integration.system import delete_schedules
from tests.shared_noop_provider import SharedNoopProvider
from tests.support import wait_for

# Production's store whatever the pass: collected in the default pass only (tests/conftest.py).
pytestmark = pytest.mark.own_postgres

COMPONENTS = [f"svc-{i}" for i in range(10)]
ROUNDS = 5  # deployments per component to `staging`: 10 x 5 = 50
SCHEDULED_ENVIRONMENTS = ["qa", "uat"]  # one schedule per component and environment: 20
KILL_EVERY = 3.0  # seconds between SIGKILLs, round robin over the workers
STRATEGIES: list[dict[str, Any]] = [
    {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {"duration": "1s"}}]},
    {"type": "blue_green", "auto_promotion_seconds": 1, "scale_down_delay_seconds": 0},
    {"type": "canary", "steps": [{"set_weight": 20}, {"set_weight": 60}]},
    {"type": "rolling", "max_surge": 1},
]
YEARLY = {"cron": ["@yearly"]}  # never due during the test: only triggers start runs


@pytest.fixture
async def cluster(
    tmp_path: Path, temporal_target: str, postgres_server: str
) -> AsyncIterator[Cluster]:
    """2 APIs + 3 workers on a fresh PostgreSQL database and a task queue of their own."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    began = time.monotonic()
    started = await start_cluster(tmp_path, temporal_target, url, apis=2, workers=3)
    print(f"\n2 APIs + 3 workers up in {time.monotonic() - began:.1f} s")
    client = await connect(started.settings)
    try:
        yield started
    finally:
        started.stop_everything()
        await _clean_queue(client, started.queue)
        print(started.logs()[-12_000:])  # shown by pytest only when the test failed


async def _clean_queue(client: Client, queue: str) -> None:
    """What a failed test left on the shared server must not fire or run on."""
    await delete_schedules(client, queue)
    query = f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        await client.get_workflow_handle(execution.id, run_id=execution.run_id).terminate()


class Chaos:
    """SIGKILLs one worker every KILL_EVERY seconds (round robin) and starts it again at once;
    the next kill waits until the restarted one is ready, so at most one is down at a time."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.kills = 0
        self.api_stopped_at: float | None = None
        self.api_exit: int | None = None

    async def kill_workers(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), KILL_EVERY)
                return
            except TimeoutError:
                pass
            worker = self.cluster.workers[self.kills % len(self.cluster.workers)]
            await asyncio.to_thread(worker.kill)
            self.kills += 1
            worker.start()
            await worker.until_ready()

    async def stop_api(self, began: float) -> None:
        """SIGTERM to API #1, as an orchestrator stops a replica; it must exit cleanly."""
        self.api_stopped_at = time.monotonic() - began
        self.api_exit = await asyncio.to_thread(self.cluster.apis[0].stop)


async def deploy_component(
    lb: Balancer, component: str, run: str, accepted: list[str], half: asyncio.Event
) -> list[dict[str, Any]]:
    """ROUNDS deployments of one component to staging, each after the previous has ended
    (a target takes one at a time)."""
    done: list[dict[str, Any]] = []
    for n in range(ROUNDS):
        body = {
            "component": component,
            "environment": "staging",
            "version": f"v{n + 1}",
            "strategy": STRATEGIES[(n + COMPONENTS.index(component)) % len(STRATEGIES)],
        }
        previous = done[-1]["id"] if done else None
        started = await lb.deploy(body, key=f"{run}-{component}-{n}", after=previous)
        accepted.append(started["id"])
        if len(accepted) >= len(COMPONENTS) * ROUNDS // 2:
            half.set()
        done.append(await lb.until_final(started["id"]))
    return done


async def scheduled_deployment(
    lb: Balancer, component: str, environment: str, delay: float
) -> dict[str, Any]:
    """A schedule of one deployment, created and triggered through the APIs; the run's
    deployment, once it has ended."""
    await asyncio.sleep(delay)  # spread over the run: not a synchronisation
    schedule = f"{component}-{environment}"
    body = {
        "id": schedule,
        "type": "deployment",
        "input": {"component": component, "environment": environment, "version": "s1"},
        "spec": YEARLY,
    }
    resp = await lb.request("POST", "/api/v1/schedules", json=body)
    assert resp.status_code == 201, resp.text
    resp = await lb.request("POST", f"/api/v1/schedules/{schedule}/trigger", json={})
    assert resp.status_code == 202, resp.text

    async def described() -> dict[str, Any]:
        got = await lb.request("GET", f"/api/v1/schedules/{schedule}")
        assert got.status_code == 200, got.text
        return dict(got.json())

    view = await wait_for(
        described,
        lambda v: any(r["outcome"] for r in v["last_runs"]),
        within=90,
        every=0.3,
        what=f"schedule {schedule}'s run",
    )
    (run,) = view["last_runs"]
    assert run["status"] == "completed" and run["outcome"].startswith("started dep-"), run
    final = await lb.until_final(run["outcome"].removeprefix("started "))
    return {**final, "schedule": schedule}


# Five Python processes start (each imports every workflow and activity) before the run, and
# a killed worker's activity waits out its start-to-close timeout (up to 30 s) before it is
# retried elsewhere: more than the suite's 120 s on a busy machine.
@pytest.mark.timeout(240)
async def test_two_apis_and_three_workers_survive_kills_and_a_stopped_api(
    cluster: Cluster,
) -> None:
    lb = Balancer(cluster)
    chaos = Chaos(cluster)
    run = uuid.uuid4().hex[:8]
    try:
        await register(lb, COMPONENTS)
        began = time.monotonic()
        stop_chaos, half = asyncio.Event(), asyncio.Event()
        killer = asyncio.create_task(chaos.kill_workers(stop_chaos))
        accepted: list[str] = []
        direct = [deploy_component(lb, c, run, accepted, half) for c in COMPONENTS]
        scheduled = [
            scheduled_deployment(lb, c, env, delay=0.6 * i)
            for i, (env, c) in enumerate(
                (env, c) for env in SCHEDULED_ENVIRONMENTS for c in COMPONENTS
            )
        ]
        stopper = asyncio.create_task(_when(half, chaos.stop_api(began)))
        try:
            results = await asyncio.gather(*direct, *scheduled)
        finally:
            stop_chaos.set()
            await killer
            await stopper
        elapsed = time.monotonic() - began
        chains: list[list[dict[str, Any]]] = results[: len(COMPONENTS)]
        deployments = [d for chain in chains for d in chain]
        by_schedule: list[dict[str, Any]] = results[len(COMPONENTS) :]
        await _check(cluster, lb, deployments, by_schedule)
        # The throughput benchmark's block (benchmarks/bench_scale_out.py) on this cluster, as
        # its smoke test: a deployment of every component to a new environment at once.
        block = await run_block(
            lb, await connect(cluster.settings), Meter(cluster, None, None), COMPONENTS, 3, "b1"
        )
        assert block.throughput > 0 and min(block.cores.values()) >= 0, block
    finally:
        await lb.aclose()
    failures = sum(d["state"] != "succeeded" for d in deployments + by_schedule)
    took = sorted(
        (
            datetime.fromisoformat(d["finished_at"]) - datetime.fromisoformat(d["created_at"])
        ).total_seconds()
        for d in deployments + by_schedule
    )
    print(
        f"\nscale-out: {len(deployments)} deployments + {len(by_schedule)} scheduled, "
        f"2 APIs + 3 workers; {chaos.kills} worker SIGKILLs, API #1 stopped at "
        f"{chaos.api_stopped_at:.1f} s (exit {chaos.api_exit}), {lb.refused} requests refused "
        f"and sent to the other API, served {lb.served}; {lb.busy} 409s for a "
        f"target whose last deployment had ended but not yet closed; a deployment took "
        f"{statistics.median(took):.1f} s (median), {took[-1]:.1f} s (max); failures {failures}; "
        f"{elapsed:.1f} s; then {len(COMPONENTS)} at once in {block.seconds:.1f} s"
    )
    # A kill waits for the last victim to be back (one worker down at a time): on a loaded
    # machine a restart takes its import time, so fewer kills fit into the run.
    assert chaos.kills >= 2, "the run ended before the chaos did anything"
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully: -15, not a
    # kill after the 20 s grace (None).
    assert chaos.api_exit in (0, -signal.SIGTERM), "API #1 did not stop cleanly on SIGTERM"


async def _when(event: asyncio.Event, then: Any) -> None:
    await event.wait()
    await then


async def _check(
    cluster: Cluster,
    lb: Balancer,
    direct: list[dict[str, Any]],
    scheduled: list[dict[str, Any]],
) -> None:
    everything = direct + scheduled
    ids = [d["id"] for d in everything]
    assert len(direct) == 50 and len(scheduled) == 20
    assert [d for d in everything if d["state"] != "succeeded"] == []
    assert len(set(ids)) == len(ids), "a deployment id was answered twice"
    assert {d["initiator"] for d in scheduled} == {f"schedule:{d['schedule']}" for d in scheduled}

    # The store holds these deployments and no other (a retried start made none twice).
    resp = await lb.request("GET", "/api/v1/deployments", params={"limit": 200})
    page = resp.json()
    assert page["total"] == 70 and sorted(d["id"] for d in page["items"]) == sorted(ids)

    # Temporal: one completed deployment run per deployment, nothing else left or failed.
    client = await connect(cluster.settings)  # its payload keys: the memos are encrypted
    queue = f"TaskQueue = '{cluster.queue}'"

    async def executions() -> list[Any]:
        return [e async for e in client.list_workflows(queue)]

    runs = await wait_for(
        executions,
        lambda found: (
            all(e.status != WorkflowExecutionStatus.RUNNING for e in found)
            and sum(e.workflow_type == DEPLOYMENT_WORKFLOW for e in found) >= 70
        ),
        within=20,
        every=0.3,
        what="every workflow on the task queue closed",
    )
    assert Counter(e.status for e in runs) == {WorkflowExecutionStatus.COMPLETED: len(runs)}
    memos = [(await e.memo()).get("deployment_id") for e in runs if e.workflow_type == "deployment"]
    assert sorted(memos) == sorted(ids), "a deployment ran twice, or one ran that nobody asked"

    # The audit trail: one `deployment.created` per deployment, by whom it says, and the
    # chain holds after two APIs and three workers (killed mid-write) appended to it.
    resp = await lb.request(
        "GET", "/api/v1/audit", params={"action": "deployment.created", "limit": 1000}
    )
    created = Counter(e["target"] for e in resp.json())
    assert created == Counter(ids), "a deployment's start is missing from or twice in the audit"
    for action in ("schedule.created", "schedule.triggered"):
        resp = await lb.request("GET", "/api/v1/audit", params={"action": action, "limit": 100})
        assert sorted(e["target"] for e in resp.json()) == sorted(d["schedule"] for d in scheduled)
    verdict = (await lb.request("GET", "/api/v1/audit/verify")).json()
    assert verdict["intact"] and verdict["checked"] >= 110, verdict

    # Revisions: per target 1..n, one per successful deployment, in the order they ran.
    expected: dict[tuple[str, str], list[str]] = {}
    for d in sorted(everything, key=lambda d: d["created_at"]):
        expected.setdefault((d["component"], d["environment"]), []).append(d["id"])
    for (component, environment), deployed in expected.items():
        resp = await lb.request(
            "GET",
            "/api/v1/deployments/revisions",
            params={"component": component, "environment": environment},
        )
        revisions = sorted(resp.json(), key=lambda r: r["revision"])
        assert [r["revision"] for r in revisions] == list(range(1, len(deployed) + 1))
        assert [r["deployment_id"] for r in revisions] == deployed

    # The infrastructure (shared by the workers): one set per target, the last version, all
    # the traffic; no set left behind by a worker killed between two steps.
    provider = SharedNoopProvider(cluster.state_dir)
    assert len(await provider.targets()) == len(COMPONENTS) * 3
    last = {target: [d for d in everything if d["id"] == ids_[-1]][0]["version"]
            for target, ids_ in expected.items()}  # fmt: skip
    for (component, environment), version in last.items():
        state = await provider.state(component, environment)
        assert [(s.version, state.weights.get(s.slot)) for s in state.sets] == [(version, 100)]
