"""`r2c watch release ID` (plain lines, and the live view in a real terminal) and `r2c describe
release ID` against the API served over HTTP (the release's event stream included), on the
provider that starts nothing."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from typing import Any

import pexpect

from cli.demo import demo_spec
from tests.integration.cli_served import cli_env, r2c, served_over_http
from tests.integration.system import System

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours, the cursor


async def test_a_release_watched_to_its_end_in_plain_lines(
    make_system: Callable[..., Any],
) -> None:
    system: System = await make_system(noop=True)
    for name, needs in (("store", None), ("shop", "store")):
        spec = demo_spec(name, 1)
        if needs:
            spec["depends_on"] = [{"component": needs}]
        made = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
        assert made.status_code == 201, made.text
    started = await system.http.post(
        "/api/v1/releases",
        json={"environment": "dev", "components": {"shop": "v1", "store": "v1"}},
        headers=system.auth(),
    )
    assert started.status_code == 202, started.text
    release_id = started.json()["id"]
    async with served_over_http(system):
        watched = await r2c(system, "watch", "release", release_id)
        assert watched.returncode == 0, watched.stdout + watched.stderr
        lines = watched.stdout.splitlines()
        store = next(i for i, line in enumerate(lines)
                     if line.startswith("  wave 1 store v1: succeeded (dep-"))  # fmt: skip
        shop = next(i for i, line in enumerate(lines)
                    if line.startswith("  wave 2 shop v1: succeeded (dep-"))  # fmt: skip
        assert store < shop  # the dependency first
        assert lines[-1].startswith(f"{release_id} succeeded | dev | wave 2/2"), lines
        assert len(lines) == len(set(lines))  # one line per change

        # On a terminal: the live table, then the outcome.
        child = pexpect.spawn(
            sys.executable, ["-m", "cli", "watch", "release", release_id], env=cli_env(system),
            encoding="utf-8", dimensions=(30, 160), timeout=30,
        )  # fmt: skip
        await asyncio.to_thread(child.expect, pexpect.EOF)
        child.close()
        screen = ANSI.sub("", str(child.before)).replace("\r", "")
        assert f"release {release_id} → dev  SUCCEEDED  wave 2 of 2" in screen, screen
        assert "outcome: succeeded" in screen and child.exitstatus == 0
        for row in ("1     store", "2     shop"):
            assert row in screen, screen

        described = await r2c(system, "describe", "release", release_id)
        assert described.returncode == 0, described.stderr
        assert "wave 1:      store" in described.stdout
        assert "wave 2:      shop" in described.stdout
        assert "state:       succeeded" in described.stdout
        unknown = await r2c(system, "watch", "release", "rel-000000000000")
        assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr, unknown
