"""Record the histories the replay tests replay:
`python -m tests.histories.record [--encrypted] [NAME ...]` (every case when no NAME).

Runs one deployment of each kind on its own dev server, with a real worker, real instances and
a little traffic, and writes each workflow's history to `tests/histories/<name>.json`. Record
again only on purpose: the committed files are what deployments in flight look like, and the
replay test proves new workflow code still understands them.

Without `--encrypted` the payloads are recorded in clear, as every history was before payload
encryption (those files prove that old histories still load). With it, they are encrypted with
the committed TEST key ring `payload-keys.json` (a key for these files only, never a real
one) and written to `<name>-encrypted.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
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
from core.ids import deployment_workflow_id
from core.payload_keys import KEY_FILE_NAME
from core.settings import Settings
from workers.main import run_worker

HERE = Path(__file__).resolve().parent
TEST_KEY_RING = HERE / KEY_FILE_NAME
ENCRYPTED_SUFFIX = "-encrypted"
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encrypted", action="store_true", help="encrypt with the test keys")
    parser.add_argument("names", nargs="*", help="cases to record (a canary needs a deployment"
                        " before it: record first-rolling with it)")  # fmt: skip
    args = parser.parse_args()
    unknown = set(args.names) - {c[0] for c in CASES}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {[c[0] for c in CASES]}")
    port = free_port()
    base = Settings(temporal_port=port, temporal_ui_port=free_port())
    server = subprocess.Popen(
        dev_server_argv(base, None, metrics_port=free_port()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(record(HERE, port, set(args.names), encrypted=args.encrypted))
    finally:
        server.terminate()
        server.wait(15)


async def record(out: Path, port: int, names: set[str], *, encrypted: bool) -> None:
    """Record the cases named (every one if none), in clear or encrypted with the test keys."""
    with tempfile.TemporaryDirectory() as tmp:
        await wait_until_serving(None, f"127.0.0.1:{port}", "default", 30)
        home = Path(tmp) / "home"
        if encrypted:
            home.mkdir(mode=0o700)
            shutil.copyfile(TEST_KEY_RING, home / KEY_FILE_NAME)
        settings = Settings(
            home=home,
            temporal_address=f"127.0.0.1:{port}",
            worker_metrics_port=0,
            payload_encryption=encrypted,
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
                if names and name not in names:
                    continue
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
                    deployment_workflow_id("demo", "dev"),
                    run_id=dep["links"]["temporal_ui"].rsplit("/", 1)[1],
                )
                history = await handle.fetch_history()
                suffix = ENCRYPTED_SUFFIX if encrypted else ""
                (out / f"{name}{suffix}.json").write_text(
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
