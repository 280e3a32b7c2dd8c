"""Traffic through `web` while a release rolls back (issue 13), with real processes: `web`
calls `api` through `api`'s router (API_URL, `r2c demo serve --upstream-env API_URL`), a load
runs against `web`'s router the whole time, and a release of a bad `api` (every request fails)
and `db-migrate` rolls back. The canary serves its errors to its share of the traffic until
its analysis fails; from the moment its weight is back to 0 until the release has ended (and
after), not one request through `web` fails, and no connection fails at any time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from activities.infrastructure.local.provider import LocalProvider
from cli.demo import demo_spec
from tests.integration.system import System
from tests.integration.test_releases import _release
from tests.support import wait_for

ORDER = ("db-migrate", "api", "web")
RATE_PER_CALLER, CALLERS = 10, 4  # about 40 requests a second through web
ERROR_RATE = {"name": "error_rate", "failure_condition": "result > 0.05",
              "initial_delay": "1s", "interval": "1s", "count": 2}  # fmt: skip
CANARY = {
    "type": "canary",
    "steps": [{"set_weight": 50}, {"analysis": {"metrics": [ERROR_RATE]}}, {"set_weight": 100}],
}


@dataclass(frozen=True)
class Sent:
    """One request through web: when it was sent, its status (None: no answer at all), and
    the upstream version web named in a 502."""

    at: float
    status: int | None
    upstream: str | None = None
    error: str | None = None


async def _register(system: System) -> None:
    for name, needs in zip(ORDER, (None, "db-migrate", "api"), strict=True):
        spec = demo_spec(name, 1)
        spec["runtime"]["health_check"]["interval_seconds"] = 0.5
        if needs:
            spec["depends_on"] = [{"component": needs}]
        if name == "web":  # calls api through api's router, as the local provider names it
            spec["runtime"]["command"] += ["--upstream-env", "API_URL"]
        resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
        assert resp.status_code == 201, resp.text


async def _load(url: str, sent: list[Sent], stop: asyncio.Event) -> None:
    """One caller: a request every 1/RATE_PER_CALLER seconds until `stop`."""
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            at = time.time()
            try:
                resp = await http.get(url)
            except httpx.HTTPError as err:
                sent.append(Sent(at, None, error=type(err).__name__))
            else:
                upstream = None
                if resp.status_code != 200:
                    upstream = (resp.json().get("upstream") or {}).get("version")
                sent.append(Sent(at, resp.status_code, upstream))
            await asyncio.sleep(max(0.0, at + 1 / RATE_PER_CALLER - time.time()))


Weights = list[tuple[float, dict[str, int]]]


async def _watch_weights(admin: str, seen: Weights, stop: asyncio.Event) -> None:
    """api's router's weights as it reports them, every 50 ms (when they change)."""
    async with httpx.AsyncClient(timeout=2) as http:
        while not stop.is_set():
            at = time.time()
            weights = (await http.get(f"{admin}/status")).json()["weights"]
            if not seen or seen[-1][1] != weights:
                seen.append((at, dict(weights)))
            await asyncio.sleep(0.05)


def _rollback_seen_at(seen: Weights) -> float:
    """When the router was first seen sending nothing to the canary again."""
    stable = {slot for slot, w in seen[0][1].items() if w > 0}
    canary_on = next(
        i for i, (_, w) in enumerate(seen) if any(v for s, v in w.items() if s not in stable)
    )
    return next(at for at, w in seen[canary_on:] if {s for s, v in w.items() if v > 0} == stable)


def timeline(release: dict[str, Any]) -> str:
    """component, start, end, outcome (and the release's rollback of it)."""
    lines = []
    for name, p in release["status"]["components"].items():
        line = f"{name}: {p['started_at']} -> {p['finished_at']} {p['state']}"
        if p.get("rollback_state"):
            line += f"; rolled back {p['rollback_started_at']} -> {p['rollback_finished_at']}"
        lines.append(line)
    return "\n".join(lines)


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def test_web_loses_no_request_while_a_release_rolls_back(
    make_system: Callable[..., Any],
) -> None:
    began = time.monotonic()
    system: System = await make_system()
    await _register(system)
    first = await _release(system, {"environment": "dev", "components": dict.fromkeys(ORDER, "v1")})
    assert first["state"] == "succeeded", timeline(first)
    print(f"\nrelease of v1 ended {time.monotonic() - began:.1f} s into the test")
    async with httpx.AsyncClient() as http:
        provider = LocalProvider(system.settings.home, http)
        web, api = await provider.state("web", "dev"), await provider.state("api", "dev")
    assert web.endpoint and api.admin_endpoint
    # Through web, api's v1 answers.
    async with httpx.AsyncClient() as http:
        answer = (await http.get(web.endpoint + "/")).json()
    assert answer["upstream"] == {"status": 200, "version": "v1"}, answer

    bad = {"value": "1", "scope": {"component": "api", "environment": "dev"}}
    resp = await system.http.put(
        "/api/v1/configuration/demo.error_rate", json=bad, headers=system.auth()
    )
    assert resp.status_code in (200, 201), resp.text
    sent: list[Sent] = []
    weights: Weights = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_load(web.endpoint + "/", sent, stop)) for _ in range(CALLERS)]
    tasks.append(asyncio.create_task(_watch_weights(api.admin_endpoint, weights, stop)))
    try:
        await wait_for(lambda: asyncio.sleep(0, len(sent) >= CALLERS), what="the load to start")
        body = {
            "environment": "dev",
            "components": {"db-migrate": "v2", "api": "v2"},
            "strategies": {"api": CANARY},
        }
        release = await _release(system, body)
        ended = _ts(release["status"]["finished_at"])
        # Some more traffic after the end, on what the release left.
        await wait_for(
            lambda: asyncio.sleep(0, time.time() > ended + 1.0), what="a second after the end"
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    print(f"release of v2 ended {time.monotonic() - began:.1f} s into the test")
    print("release of db-migrate and api v2:\n" + timeline(release))
    assert release["state"] == "rolled_back" and release["failed_component"] == "api", release
    c = release["status"]["components"]
    assert c["api"]["state"] == "rolled_back" and c["db-migrate"]["rollback_state"] == "succeeded"

    rollback = _rollback_seen_at(weights)
    failed = [s for s in sent if s.status != 200]
    before = [s for s in failed if s.at < rollback]
    during = [s for s in failed if rollback <= s.at <= ended]
    after = [s for s in failed if s.at > ended]
    window = [s for s in sent if rollback <= s.at <= ended]
    print(
        f"through web: {len(sent)} requests; failed {len(before)} before the canary's weight"
        f" was back to 0, {len(during)} during the rollback ({len(window)} requests in"
        f" {ended - rollback:.2f} s until the release ended), {len(after)} after;"
        f" connection errors {sum(s.status is None for s in sent)}"
    )
    assert [s for s in sent if s.status is None] == []  # no connection failed, ever
    assert during == [] and after == []
    assert len(window) >= 5, "the rollback window carried too little traffic to say anything"
    # What failed before was the canary's own answer, passed on by web: nothing else.
    assert before, "web's traffic never reached api's canary: is it going through the router?"
    assert {(s.status, s.upstream) for s in before} == {(502, "v2")}, before[:5]
