"""The only place a Temporal client is built, so every process converts payloads the same way."""

from __future__ import annotations

import dataclasses
import functools
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from core.codec import EncryptionCodec
from core.contracts import SEARCH_ATTRIBUTES
from core.payload_key_store import open_key_source
from core.settings import Settings
from core.tls import temporal_tls
from core.tracing import tracer

log = logging.getLogger(__name__)


def make_runtime(metrics_bind: str | None = None) -> Runtime:
    """The SDK runtime: its logs go through Python logging (so they are JSON like ours) and,
    for workers, its metrics to their own Prometheus port. Without metrics it is made once per
    process and shared: a runtime a client has used is never freed (its Tokio threads, epoll
    descriptors and connections stay), so one per API or worker started in a process (the
    tests start hundreds) would pile up."""
    if metrics_bind is None:
        return _shared_runtime()
    return _new_runtime(metrics_bind)


@functools.cache
def _shared_runtime() -> Runtime:
    return _new_runtime(None)


def _new_runtime(metrics_bind: str | None) -> Runtime:
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            metrics=PrometheusConfig(bind_address=metrics_bind) if metrics_bind else None,
        )
    )


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, encrypted with the key ring `settings.payload_keys` names (the file in
    `settings.home`, or Vault) unless `payload_encryption` is off. The ring is created on first
    use; a Vault that cannot be used raises here, naming Vault and R2C_PAYLOAD_KEYS."""
    if not settings.payload_encryption:
        return pydantic_data_converter
    codec = EncryptionCodec(open_key_source(settings))
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def connect(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    lazy: bool = False,
    identity: str | None = None,
) -> Client:
    """Connect to `settings.temporal_target`. `lazy` defers the first connection to first use,
    so the API can start (and report not-ready) while Temporal is down. Every payload the
    client and its workers send or read goes through `data_converter(settings)`. With tracing
    on, Temporal's tracing interceptor is on the client, and so on the workers built from it:
    a workflow started within a request joins its trace, with its activities.

    TLS, mTLS and a Temporal Cloud API key come from the TEMPORAL_TLS_* settings and
    TEMPORAL_API_KEY (core/tls.temporal_tls checks the files first, naming the setting)."""
    tls = temporal_tls(settings)
    try:
        return await Client.connect(
            settings.temporal_target,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
            runtime=runtime,
            lazy=lazy,
            identity=identity,
            interceptors=_tracing_interceptors(),
            # An API key travels over TLS only (Temporal Cloud); without one, plaintext.
            tls=tls if tls is not None else settings.temporal_api_key is not None,
            api_key=settings.temporal_api_key,
        )
    except RuntimeError as err:
        if tls is None and settings.temporal_api_key is None:
            raise
        # The core's message says which handshake step failed; ours adds what was tried.
        raise TemporalConnectError(
            f"cannot connect to Temporal at {settings.temporal_target} over TLS"
            f" ({_tls_summary(settings)}): {err}{mtls_hint(settings)}"
        ) from None


class TemporalConnectError(RuntimeError):
    """A TLS connection to Temporal failed; the message names the settings in use (never the
    API key or a private key)."""


def mtls_hint(settings: Settings) -> str:
    """What to add to a failed TLS connection's message when no client certificate was sent."""
    # A server that requires a client certificate just closes the connection on one without:
    # the core's message ("peer closed connection") does not say what is missing.
    if settings.temporal_tls_cert is not None:
        return ""
    return (
        "; if the server requires a client certificate (mTLS), set TEMPORAL_TLS_CERT and"
        " TEMPORAL_TLS_KEY"
    )


def _tls_summary(settings: Settings) -> str:
    parts = [f"CA {settings.temporal_tls_ca}" if settings.temporal_tls_ca else "system CAs"]
    if settings.temporal_tls_cert:
        parts.append(f"client certificate {settings.temporal_tls_cert}")
    if settings.temporal_tls_server_name:
        parts.append(f"server name {settings.temporal_tls_server_name}")
    if settings.temporal_api_key:
        parts.append("API key from TEMPORAL_API_KEY")
    return ", ".join(parts)


def _tracing_interceptors() -> list[Interceptor]:
    # None without tracing: the path of every start and every activity stays as it was.
    temporal_tracer = tracer("temporalio")
    if temporal_tracer is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(temporal_tracer)]


async def ensure_search_attributes(client: Client) -> None:
    """Register the project's search attributes on a server that lacks them (idempotent)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        log.info("registering search attributes %s", sorted(missing))
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
