"""An API stopped in a process leaves nothing behind: not the app, not its Temporal client,
not a Temporal runtime. Tests start hundreds of APIs and workers in one process; each used to
stay alive, with a runtime's threads and descriptors (426 threads and 1,153 descriptors 24
minutes into the suite)."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

from starlette.routing import Mount

from api.app import create_app
from cli.processes import free_port
from core.db.migrate import upgrade
from core.settings import Settings
from core.temporal import make_runtime


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


async def _start_and_stop(settings: Settings) -> list[weakref.ref[object]]:
    """Weak references to the app, the dashboard app mounted in it and the Temporal client."""
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    held: list[object] = [app, app.state.temporal]
    held += [route.app for route in app.routes if isinstance(route, Mount)]
    await lifespan.__aexit__(None, None, None)
    return [weakref.ref(obj) for obj in held]


async def test_a_stopped_api_is_freed_with_its_client(tmp_path: Path) -> None:
    # Nothing listens on port 1: the API's client connects lazily, so it starts all the same.
    settings = Settings(
        home=tmp_path / "home",
        temporal_address="127.0.0.1:1",
        port=free_port(),
        metrics_port=free_port(),
    )
    upgrade(settings)
    refs = await _start_and_stop(settings)
    gc.collect()
    threads = _threads()
    for _ in range(2):
        refs += await _start_and_stop(settings)
    gc.collect()
    alive = [ref() for ref in refs if ref() is not None]
    assert not alive, f"outlived their API: {alive}"
    assert _threads() <= threads, "each API left threads behind"


def test_runtimes_without_metrics_are_one_per_process() -> None:
    assert make_runtime() is make_runtime()
