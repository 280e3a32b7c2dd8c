"""The demo's upstream (`--upstream-url` / `--upstream-env`): each `/` calls the upstream's `/`
and answers 502 naming what the upstream did when that call fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from cli.demo import DemoApp, resolve_upstream
from cli.processes import free_port
from tests.support import wait_for


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[str, str]]:
    """(a healthy v1, a v2 that fails every request), served on free ports."""
    servers, tasks, urls = [], [], []
    for app in (DemoApp("v1", 0, 0), DemoApp("v2", 1, 0)):
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None))
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve()))
        urls.append(f"http://127.0.0.1:{port}")
    for server in servers:
        await wait_for(lambda s=server: asyncio.sleep(0, s.started), what="upstream started")
    yield urls[0], urls[1]
    # Each server put its own signal handlers over the last one's and puts back what it
    # found as it stops: stopped last-started first, the process gets its own handlers back
    # (a stopped server's handler left behind makes sse-starlette end every later stream).
    for server, task in reversed(list(zip(servers, tasks, strict=True))):
        server.should_exit = True
        await task


async def call(app: DemoApp) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://web"
    ) as c:
        try:
            return await c.get("/")
        finally:
            await app.aclose()


async def test_the_demo_answers_502_naming_a_failing_upstream(
    upstreams: tuple[str, str],
) -> None:
    good, bad = upstreams
    ok = await call(DemoApp("w1", 0, 0, upstream=good))
    assert ok.status_code == 200 and ok.json()["upstream"] == {"status": 200, "version": "v1"}
    failing = await call(DemoApp("w1", 0, 0, upstream=bad + "/"))
    assert failing.status_code == 502
    assert failing.json()["upstream"] == {"status": 500, "version": "v2"}
    gone = await call(DemoApp("w1", 0, 0, upstream=f"http://127.0.0.1:{free_port()}"))
    assert gone.status_code == 502 and "unreachable" in gone.json()["upstream"]["error"]


def test_the_upstream_comes_from_the_flag_the_named_variable_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEMO_UPSTREAM_URL", raising=False)
    assert resolve_upstream(None, None) is None
    monkeypatch.setenv("DEMO_UPSTREAM_URL", "http://a")
    monkeypatch.setenv("API_URL", "http://b")
    assert resolve_upstream(None, None) == "http://a"
    assert resolve_upstream(None, "API_URL") == "http://b"
    assert resolve_upstream("http://c", "API_URL") == "http://c"
    with pytest.raises(ValueError, match="NOPE_URL"):
        resolve_upstream(None, "NOPE_URL")
    with pytest.raises(ValueError, match="http"):
        DemoApp("v1", 0, 0, upstream="ftp://x")
