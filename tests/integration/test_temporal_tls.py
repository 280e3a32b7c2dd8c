"""The API and the worker reach Temporal over mTLS (a TLS-terminating relay in front of the
session's dev server, requiring a client certificate): with the right certificate everything
works; without one, or trusting another CA, the connection fails with a message naming the
settings (and never the key)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from core.ids import deployment_workflow_id
from core.settings import Settings, SettingsError
from core.temporal import TemporalConnectError, connect
from tests.integration.deploying import deploy, register_demo, until
from tests.integration.tls_relay import TlsRelay
from tests.tls_support import CertAuthority

SERVER_NAME = "temporal.test"


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    server_ca = CertAuthority(tmp_path / "server-pki", name="server CA")
    client_ca = CertAuthority(tmp_path / "client-pki", name="client CA")
    return {
        "server_ca": server_ca,
        "client_ca": client_ca,
        "server": server_ca.issue("frontend", (SERVER_NAME,)),
        "client": client_ca.issue("r2c-client", client=True),
    }


@pytest.fixture
async def relay(temporal_target: str, pki: dict[str, Any]) -> AsyncIterator[TlsRelay]:
    relay = TlsRelay(temporal_target, pki["server"].cert, pki["server"].key, pki["client_ca"].pem)
    await relay.start()
    yield relay
    await relay.stop()


def _mtls(relay: TlsRelay, pki: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "temporal_address": relay.address,
        "temporal_tls_ca": pki["server_ca"].pem,
        "temporal_tls_cert": pki["client"].cert,
        "temporal_tls_key": pki["client"].key,
        "temporal_tls_server_name": SERVER_NAME,
    }
    values.update(overrides)
    return values


async def test_the_api_and_worker_deploy_over_mtls_and_no_secret_is_logged(
    make_system: Callable[..., Any],
    relay: TlsRelay,
    pki: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    api_key = f"tk-{uuid.uuid4().hex}"
    system = await make_system(noop=True, **_mtls(relay, pki, temporal_api_key=api_key))
    await register_demo(system)
    started = await deploy(system, "v2")
    done = await until(system, started["id"], "succeeded")
    assert done["state"] == "succeeded"
    # And the workflow's last task, while the relay (the worker's only way to Temporal) is up:
    # a run left open when the relay goes holds deploy:demo:dev for every later test.
    handle = system.temporal.get_workflow_handle(deployment_workflow_id("demo", "dev"))
    await asyncio.wait_for(handle.result(), 30)
    # Both the worker's and the API's clients came through the relay, with our certificate.
    assert len(relay.accepted) >= 2 and set(relay.accepted) == {"r2c-client"}
    assert {v for n, v in relay.headers if n == "authorization"} == {f"Bearer {api_key}"}
    # Neither the API key nor the client's private key is in a log record or under R2C_HOME.
    key_body = "".join(pki["client"].key.read_text().splitlines()[1:-1])
    secrets = (api_key, key_body[48:88])  # past the ASN.1 header every P-256 key shares
    logged = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    assert logged and not [line for line in logged if any(s in line for s in secrets)]
    for path in system.settings.home.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode(errors="replace")
            assert not any(s in text for s in secrets), path


async def test_without_a_client_certificate_the_connection_is_refused(
    tmp_path: Path, relay: TlsRelay, pki: dict[str, Any]
) -> None:
    settings = Settings(
        home=tmp_path, **_mtls(relay, pki, temporal_tls_cert=None, temporal_tls_key=None)
    )
    with pytest.raises(TemporalConnectError) as err:
        await connect(settings)
    message = str(err.value)
    assert f"cannot connect to Temporal at {relay.address} over TLS" in message
    assert "set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY" in message
    assert relay.accepted == []


async def test_a_server_signed_by_another_ca_is_refused(
    tmp_path: Path, relay: TlsRelay, pki: dict[str, Any]
) -> None:
    stranger = CertAuthority(tmp_path / "stranger", name="stranger CA")
    settings = Settings(home=tmp_path, **_mtls(relay, pki, temporal_tls_ca=stranger.pem))
    with pytest.raises(TemporalConnectError) as err:
        await connect(settings)
    message = str(err.value)
    assert f"CA {stranger.pem}" in message and "client certificate" in message
    assert pki["client"].key.read_text()[30:70] not in message
    assert relay.accepted == []


async def test_a_server_certificate_for_another_name_is_refused(
    tmp_path: Path, relay: TlsRelay, pki: dict[str, Any]
) -> None:
    settings = Settings(
        home=tmp_path, **_mtls(relay, pki, temporal_tls_server_name="elsewhere.test")
    )
    with pytest.raises(TemporalConnectError, match="server name elsewhere.test"):
        await connect(settings)


async def test_an_api_key_goes_with_mtls_and_is_never_in_an_error(
    tmp_path: Path, relay: TlsRelay, pki: dict[str, Any]
) -> None:
    key = f"tk-{uuid.uuid4().hex}"
    client = await connect(Settings(home=tmp_path, **_mtls(relay, pki, temporal_api_key=key)))
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    assert described.namespace_info.name == "default"
    # Each call carried it, as Temporal Cloud expects (the dev server itself ignores it).
    paths = [v for n, v in relay.headers if n == ":path"]
    assert "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace" in paths
    authorizations = [v for n, v in relay.headers if n == "authorization"]
    assert authorizations and set(authorizations) == {f"Bearer {key}"}
    assert len(authorizations) == len(paths)

    stranger = CertAuthority(tmp_path / "stranger", name="stranger CA")
    with pytest.raises(TemporalConnectError) as err:
        await connect(
            Settings(
                home=tmp_path,
                **_mtls(relay, pki, temporal_api_key=key, temporal_tls_ca=stranger.pem),
            )
        )
    assert key not in str(err.value) and "API key from TEMPORAL_API_KEY" in str(err.value)


async def test_a_bad_client_key_file_is_named_before_any_connection(
    tmp_path: Path, relay: TlsRelay, pki: dict[str, Any]
) -> None:
    other = pki["client_ca"].issue("other", client=True)
    settings = Settings(home=tmp_path, **_mtls(relay, pki, temporal_tls_key=other.key))
    with pytest.raises(SettingsError, match="TEMPORAL_TLS_KEY=.* is not the private key"):
        await connect(settings)
    assert relay.accepted == []
