"""End to end: `r2c up --tls` makes a local CA and a server certificate in R2C_HOME/tls
(keys 0600), serves the API and its metrics over https only (its Prometheus scraping them
with that CA), says how to trust the CA, and reuses the same files on the next start.
`r2c up` reaches an external Temporal over mTLS, and says what is missing without the client
certificate."""

from __future__ import annotations

import asyncio
import signal
import ssl
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.processes import free_port
from tests.e2e.up_stack import REPO_ROOT, UpStack
from tests.integration.tls_relay import TlsRelay
from tests.support import wait_for_sync
from tests.tls_support import CertAuthority


def test_up_with_tls_serves_https_with_a_local_ca_it_keeps(up_stack: UpStack) -> None:
    up_stack.up_args = ["--tls", "--with-prometheus"]
    prometheus_port = free_port()
    up_stack.env["R2C_PROMETHEUS_PORT"] = str(prometheus_port)
    run = up_stack.start()
    tls = up_stack.home / "tls"
    ca, cert, key, ca_key = (
        tls / n for n in ("ca.pem", "server.pem", "server-key.pem", "ca-key.pem")
    )
    api = f"https://127.0.0.1:{up_stack.port}"
    output = run.output()
    assert f"API            {api}" in output
    assert f"curl --cacert {ca} -H" in output
    assert f"export R2C_CA_FILE={ca} R2C_API_URL={api}" in output
    assert "issued a server certificate" in output
    for private in (key, ca_key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600

    trust = ssl.create_default_context(cafile=str(ca))
    ready = httpx.get(f"{api}/ready", verify=trust, timeout=10)
    assert ready.status_code == 200
    tls12_only = ssl.create_default_context(cafile=str(ca))
    tls12_only.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api}/ready", verify=tls12_only, timeout=10)
    components = httpx.get(
        f"{api}/api/v1/components", headers=up_stack.headers, verify=trust, timeout=10
    )
    assert components.status_code == 200, components.text
    metrics_port = up_stack.env["METRICS_PORT"]
    metrics = httpx.get(f"https://127.0.0.1:{metrics_port}/metrics", verify=trust, timeout=10)
    assert metrics.status_code == 200 and "python_info" in metrics.text

    # up's Prometheus scrapes the API's metrics over https, trusting the local CA.
    api_target = wait_for_sync(
        lambda: _api_target(prometheus_port),
        lambda t: t is not None and t["health"] == "up",
        what="Prometheus scraping the API over https",
        within=30,
        every=0.5,
    )
    assert api_target is not None
    assert api_target["scrapeUrl"] == f"https://127.0.0.1:{metrics_port}/metrics"

    # Plain HTTP gets no answer; a client that does not trust the local CA refuses it.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{up_stack.port}/ready", timeout=10)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{api}/ready", timeout=10)

    # The CLI's API client, as the banner says.
    env = {**up_stack.env, "R2C_API_URL": api, "R2C_CA_FILE": str(ca)}
    listed = _r2c(env, "schedule", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    registered = _r2c(env, "demo", "register")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    env.pop("R2C_CA_FILE")
    refused = _r2c(env, "schedule", "list")
    assert refused.returncode != 0 and "R2C_CA_FILE" in refused.stdout + refused.stderr

    files = {p: p.read_bytes() for p in (ca, ca_key, cert, key)}
    assert run.stop(signal.SIGTERM) == 0
    again = up_stack.start()
    assert "issued a server certificate" not in again.output()
    assert {p: p.read_bytes() for p in files} == files
    assert httpx.get(f"{api}/ready", verify=trust, timeout=10).status_code == 200
    assert again.stop(signal.SIGTERM) == 0


@pytest.fixture
def mtls_relay(temporal_target: str, tmp_path: Path) -> Iterator[tuple[TlsRelay, dict[str, str]]]:
    """An mTLS relay in front of the session's Temporal server, on a loop of its own thread
    (`up` is a subprocess; the test's code is blocking); yields it and the settings to use."""
    server_ca = CertAuthority(tmp_path / "server-pki", name="server CA")
    client_ca = CertAuthority(tmp_path / "client-pki", name="client CA")
    server = server_ca.issue("frontend", ("temporal.test",))
    client = client_ca.issue("r2c-client", client=True)
    relay = TlsRelay(temporal_target, server.cert, server.key, client_ca.pem)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(relay.start(), loop).result(10)
    try:
        yield (
            relay,
            {
                "TEMPORAL_ADDRESS": relay.address,
                "TEMPORAL_TLS_CA": str(server_ca.pem),
                "TEMPORAL_TLS_CERT": str(client.cert),
                "TEMPORAL_TLS_KEY": str(client.key),
                "TEMPORAL_TLS_SERVER_NAME": "temporal.test",
            },
        )
    finally:
        asyncio.run_coroutine_threadsafe(relay.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_up_reaches_an_external_temporal_over_mtls(
    up_stack: UpStack, mtls_relay: tuple[TlsRelay, dict[str, str]]
) -> None:
    relay, settings = mtls_relay
    up_stack.env.update(
        settings,
        R2C_TASK_QUEUE=f"tq-{uuid.uuid4().hex[:8]}",
        # The session's server is shared: this stack leaves its schedules alone.
        R2C_HEALTH_CHECK_EVERY_SECONDS="0",
    )
    run = up_stack.start()
    assert f"Temporal       {relay.address}" in run.output()
    schedules = httpx.get(
        f"{up_stack.base_url}/api/v1/schedules", headers=up_stack.headers, timeout=10
    )
    assert schedules.status_code == 200, schedules.text
    # up's own wait, the worker and the API each came through with the client certificate.
    assert len(relay.accepted) >= 3 and set(relay.accepted) == {"r2c-client"}
    assert run.stop(signal.SIGTERM) == 0

    up_stack.env.pop("TEMPORAL_TLS_CERT")
    up_stack.env.pop("TEMPORAL_TLS_KEY")
    refused = up_stack.launch()
    assert refused.proc.wait(90) == 1
    assert "set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY" in refused.output()


def _api_target(prometheus_port: int) -> dict[str, Any] | None:
    try:
        resp = httpx.get(f"http://127.0.0.1:{prometheus_port}/api/v1/targets", timeout=5)
    except httpx.HTTPError:
        return None
    for target in resp.json()["data"]["activeTargets"]:
        if target["labels"]["job"] == "r2c-api":
            return dict(target)
    return None


def _r2c(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO_ROOT,
        env={k: v for k, v in env.items() if k != "SSL_CERT_FILE"} | {"R2C_HOME": env["R2C_HOME"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
