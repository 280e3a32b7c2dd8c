"""The schedules routes keep their OpenAPI contract: schemathesis (every phase) against the
real app, on the session's Temporal server. Whatever schedules it made are deleted at the end
(by the test teardown, which deletes those of the test's task queue)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

from tests.conftest import need
from tests.integration.schedules_http import served  # noqa: F401 - a fixture
from tests.integration.system import System

PHASES = "examples,coverage,fuzzing,stateful"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)
SEED = 20261129
RUN_WITHIN = 100.0


async def test_the_schedules_routes_keep_their_openapi_contract(
    served: System,  # noqa: F811
    tmp_path: Path,
) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    need(cli is not None, "schemathesis is not installed (pip install -e .[dev])")
    assert cli is not None
    report = tmp_path / "schemathesis.json"
    proc = await asyncio.create_subprocess_exec(
        cli, "run", f"http://127.0.0.1:{served.settings.port}/openapi.json",
        "--include-path-regex", "^/api/v1/schedules",
        "--phases", PHASES, "--checks", CHECKS, "--max-examples", "8", "--seed", str(SEED),
        "--workers", "1", "--request-timeout", "30",
        "--header", f"Authorization: Bearer {served.admin_key}",
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
    assert proc.returncode == 0, text[-20000:]
    cases = json.loads(report.read_text())["test_cases"]
    assert cases["with_failures"] == cases["errored"] == 0, cases
    print(f"schemathesis (schedules): {cases['generated']} cases")
