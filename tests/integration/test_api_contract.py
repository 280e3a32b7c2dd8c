"""The API keeps its OpenAPI contract: schemathesis (every phase) against the real app.

The API serves on a free port with an admin key; a worker runs the real workflows on the
no-op provider, so generated deployments, retires and health checks run to their end
without starting a process. Checks: no 5xx, every status documented, the documented content
type, the documented body. Whatever it leaves running is terminated at the end.

The coverage phase (every boundary and negative value of every schema, deterministic) spends
most of the run. The deployment strategy schema is the largest: it is covered whole through
POST /api/v1/deployments; the operations that only embed it again (a rollback's strategy, a
configuration roll-out's) skip that phase and keep the other three, fuzzing included.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from cli.bootstrap import ensure_admin_key
from core.db.migrate import upgrade
from core.settings import Settings
from tests.conftest import need
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import delete_schedules, run_noop_worker
from tests.support import wait_for

PHASES = "examples,coverage,fuzzing,stateful"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)
MAX_EXAMPLES = 8
# Operations whose coverage phase would re-run the strategy schema's ~1,100 cases (over a quarter
# of that phase between them); examples, fuzzing and stateful still reach them.
STRATEGY_AGAIN = (
    "POST /api/v1/deployments/{deployment_id}/rollback",
    "PUT /api/v1/configuration/{key}",
    "POST /api/v1/configuration/{key}/rotate",
)
SEED = 20261128  # fixed, so a failure here is reproducible with the same command
# Every phase over every route: about 110 s on 2 cores with the issue-10 routes before
# STRATEGY_AGAIN; the test's own limit (above pytest's default 120 s) leaves room for a slow
# machine.
RUN_WITHIN = 240.0


@pytest.fixture
async def api(
    make_settings: Callable[..., Settings], openbao: OpenBaoServer
) -> AsyncIterator[tuple[Settings, str]]:
    # A real Vault: routes that keep secrets there answer what they would in production.
    settings = make_settings(vault_url=openbao.url, vault_token=openbao.token)
    await asyncio.to_thread(upgrade, settings)
    key_file, _ = await ensure_admin_key(settings)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_noop_worker(settings, stop, settings.home / "worker.ready"))
    await wait_for(lambda: _ready(settings.home / "worker.ready", worker), what="worker", within=30)
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=5,
        )
    )
    serving = asyncio.create_task(server.serve())
    await wait_for(lambda: _ready(None, serving, server), what="uvicorn to listen")
    try:
        yield settings, key_file.read_text().strip()
    finally:
        await _terminate_running(app)
        server.should_exit = True
        await serving
        stop.set()
        await worker


async def _ready(path: Path | None, task: asyncio.Task[Any], server: Any = None) -> bool:
    if task.done():
        task.result()
        raise AssertionError("stopped before it was ready")
    return bool(server.started) if server is not None else bool(path and path.exists())


async def _terminate_running(app: Any) -> None:
    gateway = app.state.gateway
    await delete_schedules(gateway.client, gateway.settings.task_queue)  # schedules it made
    query = f"TaskQueue = '{gateway.settings.task_queue}' AND ExecutionStatus = 'Running'"
    async for execution in gateway.client.list_workflows(query):
        handle = gateway.client.get_workflow_handle(execution.id, run_id=execution.run_id)
        await handle.terminate(reason="contract test teardown")


@pytest.mark.timeout(RUN_WITHIN + 60)
async def test_the_api_keeps_its_openapi_contract(
    api: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, key = api
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    need(cli is not None, "schemathesis is not installed (pip install -e .[dev])")
    assert cli is not None
    report = tmp_path / "schemathesis.json"
    config = tmp_path / "schemathesis.toml"
    names = ", ".join(json.dumps(name) for name in STRATEGY_AGAIN)
    config.write_text(
        f"[[operations]]\ninclude-name = [{names}]\nphases.coverage.enabled = false\n"
    )
    proc = await asyncio.create_subprocess_exec(
        cli,
        "--config-file",
        str(config),
        "run",
        f"http://127.0.0.1:{settings.port}/openapi.json",
        "--phases",
        PHASES,
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {key}",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_WITHIN)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-20000:]
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    assert {name: p["status"] for name, p in summary["phases"].items()} == dict.fromkeys(
        PHASES.split(","), "success"
    )
    assert cases["generated"] > 500 and cases["with_failures"] == cases["errored"] == 0, cases
    print(f"schemathesis: {cases['generated']} cases, {cases['with_failures']} with failures")
