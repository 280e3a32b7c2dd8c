"""schemathesis against the dashboard's own OpenAPI document (/ui/openapi.json), with an
admin's session cookie and its CSRF token on every request: no 5xx, every status answered
documented, the documented content type. The walk in test_dashboard_contract.py provokes
each status on purpose; this one sends what schemathesis makes of the document (boundaries,
negative values, random strings), fast."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cli.processes import free_port
from tests.conftest import need
from tests.integration.dashboard_browser import signed_in
from tests.integration.system import System
from tests.serving import serving

PHASES = "examples,coverage,fuzzing"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
SEED = 20261129
RUN_WITHIN = 60.0


@pytest.fixture
async def system(make_system: Callable[..., Any]) -> System:
    built: System = await make_system(noop=True, audit_auth_failures_per_minute=0)
    return built


@pytest.fixture
async def served(system: System) -> AsyncIterator[str]:
    """The system's API on a real port, for schemathesis' own HTTP client."""
    app = system.http._transport.app  # type: ignore[attr-defined]
    port = free_port()
    async with serving(app, port, lifespan="off", timeout_graceful_shutdown=1) as url:
        yield url


@pytest.mark.timeout(RUN_WITHIN + 60)
async def test_the_dashboard_keeps_its_openapi_contract(
    system: System, served: str, tmp_path: Path
) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    need(cli is not None, "schemathesis is not installed (pip install -e .[dev])")
    assert cli is not None
    http, csrf = await signed_in(system, system.admin_key)
    cookie = http.cookies["r2c_session"]
    await http.aclose()
    report = tmp_path / "schemathesis.json"
    proc = await asyncio.create_subprocess_exec(
        cli, "run", f"{served}/ui/openapi.json", "--url", f"{served}/ui",
        "--phases", PHASES, "--checks", CHECKS, "--max-examples", "5", "--seed", str(SEED),
        "--workers", "1", "--request-timeout", "10",
        # The session and its token on every request; a sign-out or a new sign-in generated
        # on the way ends it, and what follows is answered as to anyone (also documented).
        "--header", f"Cookie: r2c_session={cookie}", "--header", f"X-CSRF-Token: {csrf}",
        "--report", "json", "--report-json-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_WITHIN)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    summary = json.loads(report.read_text())
    assert proc.returncode == 0, json.dumps(summary["failures"])[:10000] + text[-5000:]
    cases = summary["test_cases"]
    assert cases["generated"] > 50 and cases["with_failures"] == cases["errored"] == 0, cases
    print(f"schemathesis: {cases['generated']} cases against the dashboard, no failures")
