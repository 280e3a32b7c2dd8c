"""End to end: `r2c up --tls` makes a local CA and a server certificate in R2C_HOME/tls
(keys 0600), serves the API and its metrics over https only, says how to trust the CA, and
reuses the same files on the next start."""

from __future__ import annotations

import signal
import ssl
import stat
import subprocess
import sys

import httpx
import pytest

from tests.e2e.up_stack import REPO_ROOT, UpStack


def test_up_with_tls_serves_https_with_a_local_ca_it_keeps(up_stack: UpStack) -> None:
    up_stack.up_args = ["--tls"]
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

    # Plain HTTP gets no answer; a client that does not trust the local CA refuses it.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{up_stack.port}/ready", timeout=10)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{api}/ready", timeout=10)

    # The CLI's API client, as the banner says.
    env = {**up_stack.env, "R2C_API_URL": api, "R2C_CA_FILE": str(ca)}
    listed = _r2c(env, "schedule", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
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


def _r2c(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO_ROOT,
        env={k: v for k, v in env.items() if k != "SSL_CERT_FILE"} | {"R2C_HOME": env["R2C_HOME"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
