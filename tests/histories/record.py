"""Record the histories the replay tests replay: `python -m tests.histories.record`.

Runs one deployment of each kind on its own dev server, with a real worker, real instances and
a little traffic, and writes each workflow's history to `tests/histories/<name>.json`. Record
again only on purpose: the committed files are what deployments in flight look like, and the
replay test proves new workflow code still understands them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from activities.infrastructure.local.provider import LocalProvider
from api.app import create_app
from cli.bootstrap import ensure_admin_key
from cli.demo import demo_spec
from cli.load import run_load
from cli.processes import free_port
from cli.temporal_server import dev_server_argv, wait_until_serving
from core.db.migrate import upgrade
from core.settings import Settings
from workers.main import run_worker

HERE = Path(__file__).resolve().parent
BAD_ANALYSIS = {
    "metrics": [{"name": "error_rate", "failure_condition": "result > 0.05", "initial_delay": "1s"}]
}
CASES: list[tuple[str, str, dict[str, Any], dict[str, str], str | None]] = [
    ("first-rolling", "v1", {"type": "rolling"}, {}, None),
    (
        "canary-promoted",
        "v2",
        {"type": "canary", "steps": [{"set_weight": 20}, {"pause": {}}, {"set_weight": 60}]},
        {},
        "promote",
    ),
    (
        "canary-rolled-back",
        "v3",
        {"type": "canary", "steps": [{"set_weight": 50}, {"analysis": BAD_ANALYSIS}]},
        {"DEMO_ERROR_RATE": "0.6"},
        None,
    ),
    ("blue-green", "v3", {"type": "blue_green", "scale_down_delay_seconds": 1}, {}, None),
    ("rolling-aborted", "v4", {"type": "rolling", "pause_between_batches": "30s"}, {}, "abort"),
]


async def _until(http: httpx.AsyncClient, auth: dict[str, str], dep: str, states: set[str]) -> str:
    while True:
        state = str((await http.get(f"/api/v1/deployments/{dep}", headers=auth)).json()["state"])
        if state in states:
            return state
        await asyncio.sleep(0.2)


async def _pausing(http: httpx.AsyncClient, auth: dict[str, str], dep: str) -> None:
    """Until the deployment waits in a pause (timed or not)."""
    while True:
        d = (await http.get(f"/api/v1/deployments/{dep}", headers=auth)).json()
        if d["state"] == "paused" or (d["status"] and d["status"]["phase"].startswith("pause")):
            return
        await asyncio.sleep(0.2)


def main() -> None:
    """A dev server of its own (in memory) for the recording, stopped whatever happens."""
    port = free_port()
    base = Settings(temporal_port=port, temporal_ui_port=free_port())
    server = subprocess.Popen(
        dev_server_argv(base, None, metrics_port=free_port()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(record(HERE, port))
    finally:
        server.terminate()
        server.wait(15)


async def record(out: Path, port: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await wait_until_serving(None, f"127.0.0.1:{port}", "default", 30)
        settings = Settings(
            home=Path(tmp) / "home", temporal_address=f"127.0.0.1:{port}", worker_metrics_port=0
        )
        await asyncio.to_thread(upgrade, settings)
        key_file, _ = await ensure_admin_key(settings)
        auth = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop))
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api"
            ) as http,
            httpx.AsyncClient() as plain,
        ):
            provider = LocalProvider(settings.home, plain)
            spec = demo_spec("demo", 2)
            await http.post("/api/v1/components", json=spec, headers=auth)
            for name, version, strategy, env, action in CASES:
                body = {"component": "demo", "environment": "dev", "version": version,
                            "strategy": strategy, "env": env}  # fmt: skip
                dep = (await http.post("/api/v1/deployments", json=body, headers=auth)).json()
                endpoint_load = None
                if name != "first-rolling":
                    endpoint = (await provider.state("demo", "dev")).endpoint
                    endpoint_load = asyncio.create_task(
                        run_load(f"{endpoint}/", rps=40, duration=4)
                    )
                if action:
                    await _pausing(http, auth, dep["id"])
                    await http.post(f"/api/v1/deployments/{dep['id']}/{action}", headers=auth)
                state = await _until(
                    http, auth, dep["id"], {"succeeded", "rolled_back", "aborted", "failed"}
                )
                if endpoint_load is not None:
                    await endpoint_load
                await asyncio.sleep(0.5)  # the workflow closes just after it records
                handle = app.state.temporal.get_workflow_handle(
                    "deploy-demo-dev", run_id=dep["links"]["temporal_ui"].rsplit("/", 1)[1]
                )
                history = await handle.fetch_history()
                (out / f"{name}.json").write_text(
                    json.dumps(json.loads(history.to_json()), indent=1) + "\n"
                )
                print(f"{name}: {state}, {len(history.events)} events")
            for component, environment in await provider.targets():
                await provider.retire(component, environment)
        stop.set()
        await worker


if __name__ == "__main__":
    main()
    sys.exit(0)
