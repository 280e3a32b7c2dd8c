"""`r2c apply`, `r2c deploy` and its watch, run as the real command against the API served over
HTTP (its event stream included) and a worker on the local provider: real demo processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml

from api.app import create_app
from cli.demo import demo_spec
from cli.load import run_load
from tests.integration.deploying import first_version, register_demo
from tests.integration.system import System
from tests.serving import serving

CANARY = ["--canary", "50,100", "--analysis", "error_rate<0.05", "--analysis-interval", "1s",
          "--analysis-count", "2"]  # fmt: skip


@pytest.fixture
async def served(make_system: Callable[..., Any]) -> AsyncIterator[System]:
    """The system with a worker on the local provider, its API also on a real port."""
    system: System = await make_system()
    async with serving(create_app(system.settings), system.settings.port):
        yield system


@asynccontextmanager
async def traffic(endpoint: str) -> AsyncIterator[None]:
    """Requests to the target for as long as the deployment runs: the analysis judges them."""
    load = asyncio.create_task(run_load(endpoint + "/", rps=40, duration=60))
    try:
        yield
    finally:
        load.cancel()
        with suppress(asyncio.CancelledError):
            await load


def _env(system: System) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("R2C_")}
    env["R2C_HOME"] = str(system.settings.home)  # the local admin key is read from here
    env["R2C_API_URL"] = f"http://127.0.0.1:{system.settings.port}"
    env["XDG_CONFIG_HOME"] = str(system.settings.home / "xdg")  # no context of the user's
    return env


async def r2c(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cli", *args], env=_env(system),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _spec(name: str = "demo", description: str | None = None) -> dict[str, Any]:
    """The demo as register_demo makes it, with one replica (a faster test)."""
    spec = demo_spec(name, 1)
    spec["runtime"]["health_check"]["interval_seconds"] = 0.5
    if description is not None:
        spec["description"] = description
    return spec


def _file(tmp_path: Path, *specs: dict[str, Any]) -> str:
    path = tmp_path / "components.yaml"
    path.write_text(yaml.safe_dump_all([{"kind": "Component", "spec": s} for s in specs]))
    return str(path)


async def test_apply_then_a_canary_watched_to_the_end_in_plain_lines(
    served: System, tmp_path: Path
) -> None:
    made = await r2c(served, "apply", "-f", _file(tmp_path, _spec()))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "component/demo created"

    endpoint = await first_version(served)
    async with traffic(endpoint):
        done = await r2c(served, "deploy", "demo", "v2", "--env", "dev", *CANARY, "--watch")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    deployment_id = lines[0].split()[1]
    assert lines[0] == f"deployment {deployment_id} started"
    assert any(line.endswith("weights v1=50% v2=50%") for line in lines), lines
    assert any(line.startswith("  measurement error_rate[") and ": successful (" in line
               for line in lines), lines  # fmt: skip
    assert lines[-1].startswith(f"{deployment_id} succeeded | ")
    assert lines[-1].endswith("weights v1=0% v2=100% | - v2 serves 100% of the traffic")
    assert len(lines) == len(set(lines))  # one line per change, none repeated

    history = await r2c(served, "history", "demo", "--env", "dev", "-o", "yaml")
    revisions = yaml.safe_load(history.stdout)
    assert [(r["version"], r["deployment_id"] == deployment_id) for r in revisions] == [
        ("v2", True), ("v1", False)
    ]  # fmt: skip


async def test_a_bad_version_rolls_back_and_exits_3(served: System, tmp_path: Path) -> None:
    await register_demo(served, replicas=1)
    files = _file(tmp_path, _spec(), _spec(description="new words"), _spec("other"))
    dry = await r2c(served, "apply", "-f", files, "--dry-run")
    assert dry.stdout.splitlines() == [
        "component/demo unchanged", "component/demo would be configured",
        "component/other would be created",
    ], dry.stdout + dry.stderr  # fmt: skip
    endpoint = await first_version(served)
    async with traffic(endpoint):
        done = await r2c(
            served, "deploy", "demo", "v2", "--env", "dev", *CANARY,
            "--var", "DEMO_ERROR_RATE=1", "--watch",
        )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert " rolled_back | " in last and "weights v1=100% v2=0%" in last, last
    described = await r2c(served, "describe", "deployment", last.split()[0])
    assert "state:      rolled_back" in described.stdout
    assert "does not hold" in described.stdout  # the failed measurement, with its reason


async def test_the_live_view_in_a_real_terminal(served: System, tmp_path: Path) -> None:
    """A strategy file with a timed pause (counted down) and a pause until promoted: the view
    says what it waits for, `r2c promote` from another shell moves it on, and it ends."""
    await register_demo(served, replicas=1)
    await first_version(served)
    strategy = tmp_path / "strategy.yaml"
    strategy.write_text(yaml.safe_dump({"strategy": {"type": "canary", "steps": [
        {"set_weight": 30}, {"pause": {"duration": "2s"}}, {"pause": {}}, {"set_weight": 100},
    ]}}))  # fmt: skip
    child = pexpect.spawn(
        sys.executable, ["-m", "cli", "deploy", "demo", "v2", "--env", "dev", "-f", str(strategy)],
        env=_env(served), encoding="utf-8", dimensions=(40, 120), timeout=30,
    )  # fmt: skip
    await asyncio.to_thread(child.expect, r"\(canary, (dep-[0-9a-f]+)\)")
    deployment_id = child.match.group(1)
    await asyncio.to_thread(child.expect, "⏸ step 3: paused until promoted")
    running = str(child.before)  # what the view drew until then
    assert "pause: 2s left" in running or "pause: 1s left" in running  # the countdown
    assert "▶" in running and "v1=70% v2=30%" in running  # the current step; weights by version
    promoted = await r2c(served, "promote", deployment_id)
    assert promoted.stdout.startswith(f"promote: deployment {deployment_id} is "), promoted
    rest = await asyncio.to_thread(_read_until_end, child)
    screen = rest.replace("\r", "")
    assert "✓  1  set weight 30%" in screen and "✓  3  pause until promoted" in screen
    assert "v1=0% v2=100%" in screen and "outcome: succeeded" in screen
    assert child.exitstatus == 0, screen


def _read_until_end(child: pexpect.spawn) -> str:
    child.expect(pexpect.EOF)
    child.close()
    return str(child.before)
