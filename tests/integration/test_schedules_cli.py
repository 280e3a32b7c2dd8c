"""`r2c schedule ...` run as the real command against the API served over HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

from tests.integration.schedules_http import served  # noqa: F401 - a fixture
from tests.integration.system import System
from tests.support import wait_for


async def r2c(
    system: System, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("R2C_API_KEY", "R2C_API_URL")}
    env["R2C_HOME"] = str(system.settings.home)  # the admin key is read from here
    env["R2C_API_URL"] = f"http://127.0.0.1:{system.settings.port}"
    if key is not None:
        env["R2C_API_KEY"] = key
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli", "schedule", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_create_list_describe_pause_trigger_delete(served: System) -> None:  # noqa: F811
    name = f"cli-{uuid.uuid4().hex[:8]}"
    made = await r2c(
        served, "create", name, "--type", "component-health-check", "--every", "1h+15m",
        "--input", '{"rounds": 1}', "--note", "hourly check",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert f"created schedule {name}; next run " in made.stdout
    assert ":15:00Z" in made.stdout

    listed = await wait_for(
        lambda: r2c(served, "list"), lambda r: name in r.stdout, what="the list to show it"
    )
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name))
    assert "component-health-check" in row and "every 1h+15m" in row and "active" in row

    paused = await r2c(served, "pause", name, "--note", "maintenance")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"schedule {name} is paused (maintenance)"
    triggered = await r2c(served, "trigger", name)
    assert triggered.returncode == 0, triggered.stderr

    async def described() -> str:
        return (await r2c(served, "describe", name)).stdout

    shown = await wait_for(described, lambda out: " completed " in out, what="the run to end")
    assert "state:      paused - note: maintenance" in shown
    assert "counts:     1 runs, 0 skipped by overlap" in shown
    assert f"r2c:schedule:{name}-" in shown
    assert "created:    by apikey:admin" in shown

    unpaused = await r2c(served, "unpause", name)
    assert unpaused.stdout.strip() == f"schedule {name} is active (unpaused by apikey:admin)"
    deleted = await r2c(served, "delete", name)
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"deleted schedule {name}"

    gone = await r2c(served, "describe", name)
    assert gone.returncode == 1
    assert f"HTTP 404: no schedule {name!r}" in gone.stderr and "hint: " in gone.stderr


async def test_refusals_say_why_with_exit_codes(served: System) -> None:  # noqa: F811
    bad_cron = await r2c(
        served, "create", "cli-bad", "--type", "component-health-check", "--cron", "99 * * * *"
    )
    assert bad_cron.returncode == 1
    assert "HTTP 422" in bad_cron.stderr and "body.spec.cron.0" in bad_cron.stderr
    assert "minute" in bad_cron.stderr

    bad_json = await r2c(
        served, "create", "cli-bad", "--type", "component-health-check", "--every", "1h",
        "--input", "{rounds",
    )  # fmt: skip
    assert bad_json.returncode == 2 and "not JSON" in bad_json.stderr

    no_spec = await r2c(served, "create", "cli-bad", "--type", "component-health-check")
    assert no_spec.returncode == 2

    viewer = await served.key("viewer", "cli-viewer")
    refused = await r2c(
        served, "create", "cli-bad", "--type", "component-health-check", "--every", "1h",
        key=viewer,
    )  # fmt: skip
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    assert "hint: ask an admin" in refused.stderr
