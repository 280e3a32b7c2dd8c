"""A worker PROCESS for the scale-out test and benchmark: the real workflows and activities
(tests.integration.system.run_noop_worker, the same construction as the integration tests'
worker) on the shared NO-OP provider (tests/shared_noop_provider.py, a fake named as such),
so that several of these processes, and one restarted after a SIGKILL, share one target state.
Everything else is real: the Temporal server at TEMPORAL_ADDRESS, the store at POSTGRES_URL.

    python -m tests.e2e.scale_worker STATE_DIR READY_FILE
        (env: R2C_HOME, TEMPORAL_ADDRESS, R2C_TASK_QUEUE, POSTGRES_URL)

SIGTERM and SIGINT stop it gracefully, as they stop `r2c worker`: the running activities
finish (up to the worker's graceful timeout), then it exits 0. READY_FILE is written once it
polls the task queue.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from core.settings import load_settings
from tests.integration.system import run_noop_worker
from tests.shared_noop_provider import SharedNoopProvider


async def serve(state_dir: Path, ready: Path) -> None:
    settings = load_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_noop_worker(settings, stop, ready, provider=SharedNoopProvider(state_dir))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    asyncio.run(serve(Path(argv[0]), Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
