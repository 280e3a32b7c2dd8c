"""End to end: the real `r2c up` (embedded Temporal server, worker, API), driven over HTTP.

Each start of `up` costs a few seconds, so the tests are few and each tells a whole story:
the API's main paths, then a restart on the same state; a supervised worker that is killed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.up_stack import UpRun, UpStack, child_pids, pid_alive
from tests.support import wait_for_sync

WORKFLOWS = "/api/v1/orchestration/workflows"
HEALTH_CHECK = "component-health-check"
DEMO_COMPONENT: dict[str, Any] = {
    "name": "demo-e2e",
    "description": "the demo component, registered by the e2e test",
    "owner": "e2e",
    "runtime": {"command": ["r2c", "demo", "serve", "--port", "{port}", "--version", "{version}"]},
}


def client(stack: UpStack, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.Client(base_url=stack.base_url, headers=headers, timeout=20)


def admin_key(stack: UpStack) -> str:
    mode = stat.S_IMODE(stack.admin_key_file.stat().st_mode)
    assert mode == 0o600, f"{stack.admin_key_file} has mode {mode:o}; only its owner may read it"
    key = stack.admin_key_file.read_text().strip()
    assert key
    return key


def admin_key_line(run: UpRun) -> str:
    lines = [line for line in run.output().splitlines() if "admin API key" in line]
    assert len(lines) == 1, run.output()
    return lines[0]


def start_workflow(http: httpx.Client, workflow_input: dict[str, Any]) -> str:
    resp = http.post(WORKFLOWS, json={"type": HEALTH_CHECK, "input": workflow_input})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["type"] == HEALTH_CHECK
    assert body["created"] is True
    assert body["status"] == "running"
    assert body["links"]["self"] == f"{WORKFLOWS}/{body['id']}"
    return str(body["id"])


def workflow(http: httpx.Client, wf_id: str) -> dict[str, Any]:
    resp = http.get(f"{WORKFLOWS}/{wf_id}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def wait_for_status(
    http: httpx.Client, wf_id: str, status: str, within: float = 30.0
) -> dict[str, Any]:
    return wait_for_sync(
        lambda: workflow(http, wf_id),
        lambda wf: wf["status"] == status,
        within=within,
        every=0.1,
        what=f"workflow {wf_id} to be {status}",
    )


def listed(http: httpx.Client, **filters: str) -> set[str]:
    resp = http.get(WORKFLOWS, params=filters)
    assert resp.status_code == 200, resp.text
    return {item["id"] for item in resp.json()["items"]}


def wait_until_listed(http: httpx.Client, wf_id: str, **filters: str) -> None:
    """Temporal's visibility store catches up shortly after a change: poll, do not expect."""
    wait_for_sync(
        lambda: listed(http, **filters),
        lambda ids: wf_id in ids,
        within=20,
        every=0.1,
        what=f"workflow {wf_id} in the list filtered by {filters}",
    )


def assert_health_report(wf: dict[str, Any]) -> None:
    assert wf["type"] == HEALTH_CHECK
    assert wf["initiator"] == "apikey:admin"
    assert wf["close_time"] is not None
    result = wf["result"]
    assert result is not None, wf
    assert result["rounds_completed"] == 1
    assert result["unhealthy_rounds"] == 0
    # The component is registered but nothing deployed it, so no instance was probed.
    assert result["last"]["components"] == []


def stored_component_names(stack: UpStack) -> list[str]:
    """Read the store `up` was told to use directly: PostgreSQL when POSTGRES_URL is set (and
    then no SQLite file may appear), else the SQLite file in R2C_HOME."""
    sqlite_file = stack.home / "r2c.db"
    query = "SELECT name FROM components ORDER BY name"
    postgres_url = stack.env.get("POSTGRES_URL")
    if postgres_url is not None:
        assert not sqlite_file.exists(), "POSTGRES_URL is set, yet a SQLite store was made"
        with psycopg.connect(postgres_url) as conn:
            return [row[0] for row in conn.execute(query)]
    with closing(sqlite3.connect(sqlite_file)) as conn:
        return [row[0] for row in conn.execute(query)]


def reported_errors(output: str) -> list[str]:
    """The lines of `up`'s output that report an error: its own `error: ...` lines, its
    children's JSON log records at level error or above, and tracebacks."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                level = json.loads(line).get("level")
            except json.JSONDecodeError:
                level = None
            if level in ("error", "critical"):
                found.append(line)
        elif line.startswith(("error:", "Traceback")):
            found.append(line)
    return found


def stop_and_check_nothing_is_left(stack: UpStack, run: UpRun, sig: signal.Signals) -> None:
    code = run.stop(sig)
    assert code == 0, f"`r2c up` exited with {code} on {sig.name}; output:\n{run.output()}"
    assert "stopping ..." in run.output()
    # A clean stop logs no error either, whatever the exit code says.
    assert not reported_errors(run.output()), reported_errors(run.output())
    # `up` waits for each child before it exits, so anything still here was left behind.
    left = stack.leftovers()
    assert not left, f"processes left behind after {sig.name}: {left}"


def assert_private(home: Path) -> None:
    """Only the owner may read anything in the state folder: the store, the Temporal
    database, keys, logs, lock and ready files (SQLite's WAL files included)."""
    loose = {
        str(path.relative_to(home.parent)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in [home, *home.rglob("*")]
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077
    }
    assert not loose, f"readable by others: {loose}"


@pytest.mark.store  # `r2c up` on PostgreSQL too (tests/conftest.py)
def test_up_serves_the_api_and_keeps_its_state_across_a_restart(up_stack: UpStack) -> None:
    up_stack.home.mkdir(mode=0o755)  # a home made earlier, open to all: `up` closes it
    first = up_stack.start()
    key = admin_key(up_stack)
    assert_private(up_stack.home)
    made = {p.name for p in up_stack.home.iterdir()}
    assert {"admin.key", "temporal.db", "up.lock", "logs", "run"} <= made, made
    assert "POSTGRES_URL" in up_stack.env or "r2c.db" in made
    assert admin_key_line(first).endswith(f"{up_stack.admin_key_file} (new)")

    with client(up_stack, None) as anonymous, client(up_stack, key) as admin:
        # --- health and authentication
        assert anonymous.get("/health").json() == {"status": "ok"}
        # `up` saw /ready answer 200 before its banner; under load a dependency check may
        # take longer than its timeout once, so poll rather than expect.
        wait_for_sync(
            lambda: anonymous.get("/ready"),
            lambda resp: resp.status_code == 200,
            within=15,
            every=0.1,
            what="/ready to answer 200",
        )
        resp = anonymous.get("/api/v1/components")
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["type"] == "Unauthenticated"
        with client(up_stack, "r2c_000000000000_not-a-key") as stranger:
            assert stranger.get("/api/v1/components").status_code == 401

        resp = admin.post("/api/v1/apikeys", json={"name": "e2e-viewer", "role": "viewer"})
        assert resp.status_code == 201, resp.text
        viewer_key = resp.json()["key"]
        with client(up_stack, viewer_key) as viewer:
            resp = viewer.post(WORKFLOWS, json={"type": HEALTH_CHECK, "input": {}})
            assert resp.status_code == 403, resp.text
            assert resp.json()["error"]["type"] == "PermissionDenied"
            assert viewer.get(WORKFLOWS).status_code == 200

        # --- components
        resp = admin.post("/api/v1/components", json=DEMO_COMPONENT)
        assert resp.status_code == 201, resp.text
        component = resp.json()
        assert resp.headers["location"] == f"/api/v1/components/{component['id']}"
        assert component["runtime"]["command"] == DEMO_COMPONENT["runtime"]["command"]
        resp = admin.post("/api/v1/components", json=DEMO_COMPONENT)
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"]["type"] == "Conflict"
        assert stored_component_names(up_stack) == [DEMO_COMPONENT["name"]]

        # --- a workflow that completes
        done_id = start_workflow(admin, {})
        assert_health_report(wait_for_status(admin, done_id, "completed"))

        # --- a long workflow: progress while it runs, listed, cancelled
        long_id = start_workflow(admin, {"rounds": 50, "interval_seconds": 5})
        running = wait_for_sync(
            lambda: workflow(admin, long_id),
            lambda wf: wf["progress"] is not None,
            within=20,
            every=0.1,
            what="the status query to answer",
        )
        assert running["status"] == "running"
        assert running["progress"]["rounds"] == 50
        assert running["progress"]["phase"] in (
            "starting",
            "listing",
            "probing",
            "recording",
            "sampling",
            "waiting",
        )
        assert running["result"] is None
        wait_until_listed(admin, long_id, status="running")
        wait_until_listed(admin, long_id, type=HEALTH_CHECK)
        assert done_id not in listed(admin, status="running")

        resp = admin.delete(f"{WORKFLOWS}/{long_id}")
        assert resp.status_code == 202, resp.text
        assert resp.json()["action"] == "cancel_requested"
        cancelled = wait_for_status(admin, long_id, "cancelled")
        assert cancelled["close_time"] is not None
        assert cancelled["failure"] is not None, cancelled
        resp = admin.delete(f"{WORKFLOWS}/{long_id}")
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"]["type"] == "Conflict"
        wait_until_listed(admin, long_id, status="cancelled")

    # --- SIGTERM stops everything, and only then does `up` exit
    stop_and_check_nothing_is_left(up_stack, first, signal.SIGTERM)

    # --- a second `up` on the same state finds everything where the first left it
    second = up_stack.start()
    assert not admin_key_line(second).endswith("(new)"), admin_key_line(second)
    assert admin_key(up_stack) == key
    with client(up_stack, key) as admin:
        names = [c["name"] for c in admin.get("/api/v1/components").json()]
        assert names == [DEMO_COMPONENT["name"]]
        assert {done_id, long_id} <= listed(admin, type=HEALTH_CHECK)
        assert_health_report(workflow(admin, done_id))
        assert workflow(admin, long_id)["status"] == "cancelled"
        with client(up_stack, viewer_key) as viewer:
            assert workflow(viewer, done_id)["status"] == "completed"
        # The restarted worker runs new workflows too.
        again_id = start_workflow(admin, {})
        assert_health_report(wait_for_status(admin, again_id, "completed"))

    # --- Ctrl-C stops it just as well
    stop_and_check_nothing_is_left(up_stack, second, signal.SIGINT)


def test_up_restarts_a_worker_or_api_that_dies(up_stack: UpStack) -> None:
    run = up_stack.start()
    key = admin_key(up_stack)
    # Every process of the stack is found by the /proc scan that checks for leftovers.
    stack = up_stack.leftovers()
    assert run.proc.pid in stack, stack
    for command in ("temporal server start-dev", "-m cli worker", "-m cli api"):
        assert len(child_pids(up_stack.home, command)) == 1, (command, stack)
    assert any(str(up_stack.temporal_db) in cmdline for cmdline in stack.values()), stack

    # --- the worker dies
    (old_worker,) = child_pids(up_stack.home, "-m cli worker")
    os.kill(old_worker, signal.SIGKILL)
    run.wait_for_output("worker exited with code -9")
    new_workers = wait_for_sync(
        lambda: child_pids(up_stack.home, "-m cli worker"),
        lambda pids: len(pids) == 1 and old_worker not in pids,
        within=30,
        every=0.1,
        what="`up` to start a new worker",
    )
    assert not pid_alive(old_worker)
    with client(up_stack, key) as admin:
        # Started while the new worker may still be connecting: Temporal keeps the task.
        wf_id = start_workflow(admin, {})
        assert_health_report(wait_for_status(admin, wf_id, "completed"))

    # --- the API dies
    (old_api,) = child_pids(up_stack.home, "-m cli api")
    os.kill(old_api, signal.SIGKILL)
    run.wait_for_output("api exited with code -9")
    wait_for_sync(
        lambda: serving(up_stack, old_api),
        within=30,
        every=0.1,
        what="`up` to start a new API that is ready",
    )
    with client(up_stack, key) as admin:
        assert workflow(admin, wf_id)["status"] == "completed"
        assert_health_report(wait_for_status(admin, start_workflow(admin, {}), "completed"))

    assert run.proc.poll() is None, run.output()
    assert child_pids(up_stack.home, "-m cli worker") == new_workers
    # The restarted children are stopped like the first ones.
    stop_and_check_nothing_is_left(up_stack, run, signal.SIGTERM)


def serving(stack: UpStack, old_api: int) -> bool:
    """True once an API process other than `old_api` answers /ready with 200."""
    apis = child_pids(stack.home, "-m cli api")
    if len(apis) != 1 or old_api in apis:
        return False
    try:
        return httpx.get(f"{stack.base_url}/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
