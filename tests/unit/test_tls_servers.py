"""The API's port and its metrics port with a certificate, tried with real TLS clients: TLS 1.3
only by default, 1.2 when configured, a client trusting another CA refuses them, plain HTTP
gets no answer."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from api.server import start_metrics_server, uvicorn_config
from cli.processes import free_port
from core.settings import Settings
from tests.support import wait_for
from tests.tls_support import CertAuthority

Scope = MutableMapping[str, Any]


async def _hello(
    scope: Scope,
    receive: Callable[[], Awaitable[Any]],  # noqa: ARG001
    send: Callable[[Any], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello over " + scope["scheme"].encode()})


def _settings(tmp_path: Path, ca: CertAuthority, min_version: str = "1.3") -> Settings:
    server = ca.issue("server")
    return Settings(
        home=tmp_path,
        port=free_port(),
        metrics_port=free_port(),
        tls_cert=server.cert,
        tls_key=server.key,
        tls_min_version=min_version,  # type: ignore[arg-type]
    )


async def _serving(settings: Settings) -> AsyncIterator[uvicorn.Server]:
    server = uvicorn.Server(uvicorn_config(settings, _hello))
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: asyncio.sleep(0, server.started), what="uvicorn started", within=10)
    yield server
    server.should_exit = True
    await task


def _client(ca: Path, *, max_version: ssl.TLSVersion | None = None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(ca))
    if max_version is not None:
        context.maximum_version = max_version
    return httpx.AsyncClient(verify=context, timeout=5)


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    return CertAuthority(tmp_path / "pki")


async def test_the_api_port_serves_tls_1_3_only_by_default(
    tmp_path: Path, ca: CertAuthority
) -> None:
    settings = _settings(tmp_path, ca)
    url = f"https://127.0.0.1:{settings.port}/"
    async for _ in _serving(settings):
        async with _client(ca.pem) as http:
            resp = await http.get(url)
            assert resp.text == "hello over https"
            assert resp.extensions["network_stream"].get_extra_info("ssl_object").version() == (
                "TLSv1.3"
            )
        async with _client(ca.pem, max_version=ssl.TLSVersion.TLSv1_2) as old:
            with pytest.raises(httpx.ConnectError):
                await old.get(url)
        other = CertAuthority(tmp_path / "other", name="other CA")
        async with _client(other.pem) as stranger:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await stranger.get(url)
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{settings.port}/")


async def test_tls_1_2_is_accepted_when_configured(tmp_path: Path, ca: CertAuthority) -> None:
    settings = _settings(tmp_path, ca, min_version="1.2")
    async for _ in _serving(settings):
        async with _client(ca.pem, max_version=ssl.TLSVersion.TLSv1_2) as old:
            resp = await old.get(f"https://127.0.0.1:{settings.port}/")
            assert resp.text == "hello over https"
            assert resp.extensions["network_stream"].get_extra_info("ssl_object").version() == (
                "TLSv1.2"
            )


async def test_the_metrics_port_serves_tls_with_the_same_rules(
    tmp_path: Path, ca: CertAuthority
) -> None:
    settings = _settings(tmp_path, ca)
    server = start_metrics_server(settings)
    url = f"https://127.0.0.1:{settings.metrics_port}/metrics"
    try:
        async with _client(ca.pem) as http:
            resp = await http.get(url)
            assert resp.status_code == 200 and "python_info" in resp.text
        async with _client(ca.pem, max_version=ssl.TLSVersion.TLSv1_2) as old:
            with pytest.raises(httpx.ConnectError):
                await old.get(url)
        other = CertAuthority(tmp_path / "other", name="other CA")
        async with _client(other.pem) as stranger:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await stranger.get(url)
    finally:
        server.shutdown()
        server.server_close()

    relaxed = settings.model_copy(update={"tls_min_version": "1.2", "metrics_port": free_port()})
    server = start_metrics_server(relaxed)
    try:
        async with _client(ca.pem, max_version=ssl.TLSVersion.TLSv1_2) as old:
            resp = await old.get(f"https://127.0.0.1:{relaxed.metrics_port}/metrics")
            assert resp.status_code == 200
    finally:
        server.shutdown()
        server.server_close()
