"""`r2c watch release ID`, `r2c get releases` and `r2c describe release ID` against the API
served over HTTP (the release's event stream included), on the provider that starts nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cli.demo import demo_spec
from tests.integration.cli_served import r2c, served_over_http
from tests.integration.system import System


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

        listed = await r2c(system, "get", "releases")
        assert release_id in listed.stdout and "succeeded" in listed.stdout
        described = await r2c(system, "describe", "release", release_id)
        assert described.returncode == 0, described.stderr
        assert "wave 1:      store" in described.stdout
        assert "wave 2:      shop" in described.stdout
        assert "state:       succeeded" in described.stdout
        unknown = await r2c(system, "watch", "release", "rel-000000000000")
        assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr, unknown
