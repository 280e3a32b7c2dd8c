"""For the CLI's tests: the API of a test's system served over HTTP on its port (the CLI is a
real process that talks to it), and `r2c` run as that process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from api.app import create_app
from tests.integration.system import System
from tests.serving import serving


@asynccontextmanager
async def served_over_http(system: System) -> AsyncIterator[str]:
    """The system's API on http://127.0.0.1:<its port> for the block; yields that URL."""
    async with serving(create_app(system.settings), system.settings.port) as url:
        yield url


def cli_env(system: System, *, local_api: bool = True) -> dict[str, str]:
    """The environment of `r2c`: no R2C_* of the user's, contexts in the test's own directory;
    `local_api`: R2C_API_URL and the admin key of the system (else only what a context says)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("R2C_")}
    env["XDG_CONFIG_HOME"] = str(system.settings.home / "xdg")
    env["BROWSER"] = "true"  # webbrowser runs `true URL`: the test plays the browser
    if local_api:
        env["R2C_HOME"] = str(system.settings.home)
        env["R2C_API_URL"] = f"http://127.0.0.1:{system.settings.port}"
    else:
        env["R2C_HOME"] = str(system.settings.home / "elsewhere")  # no admin key there
    return env


async def r2c(
    system: System, *args: str, local_api: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = cli_env(system, local_api=local_api)
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cli", *args], env=env,
        capture_output=True, text=True, timeout=60, input=stdin,
    )  # fmt: skip
