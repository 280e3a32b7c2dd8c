"""One settings object for every process, layered: defaults < config/<env>/app.json < environment.

Built in each entry point (never at import time, never in workflow code). Environment variable
names follow the platform specification (`PORT`, `METRICS_PORT`, ...) so the same deployment
manifests work for every component of the platform.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.models.apikeys import Role
from core.models.scopes import Grant

Environment = Literal["development", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
UiActions = Literal["all", "safe", "none"]

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "root", "dev-root-token"}


class Settings(BaseSettings):
    """Every setting of the system, with the environment variable that sets it."""

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    env: Environment = Field("development", validation_alias="R2C_ENV")
    port: int = Field(8080, ge=1, le=65535, validation_alias="PORT")
    host: str = Field("127.0.0.1", validation_alias="R2C_HOST")
    metrics_port: int = Field(9091, ge=1, le=65535, validation_alias="METRICS_PORT")
    worker_metrics_port: int = Field(
        9092,
        ge=0,
        le=65535,
        validation_alias="R2C_WORKER_METRICS_PORT",
        description="Temporal SDK metrics of the worker; 0 disables them",
    )
    log_level: LogLevel = Field("INFO", validation_alias="LOG_LEVEL")
    home: Path = Field(Path(".r2c"), validation_alias="R2C_HOME")
    postgres_url: str | None = Field(None, validation_alias="POSTGRES_URL")
    vault_url: str | None = Field(None, validation_alias="VAULT_URL")
    vault_token: str | None = Field(None, validation_alias="VAULT_TOKEN", repr=False)
    vault_role_id: str | None = Field(
        None,
        validation_alias="VAULT_ROLE_ID",
        description="AppRole login instead of a token (with VAULT_SECRET_ID)",
    )
    vault_secret_id: str | None = Field(None, validation_alias="VAULT_SECRET_ID", repr=False)
    vault_kv_mount: str = Field(
        "secret",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        validation_alias="VAULT_KV_MOUNT",
        description="the KV v2 mount that holds configuration secrets",
    )
    vault_port: int = Field(
        8200,
        ge=1,
        le=65535,
        validation_alias="R2C_VAULT_PORT",
        description="port of the embedded OpenBao server (when VAULT_URL is not set)",
    )
    vault_wait_seconds: float = Field(
        300,
        ge=0,
        le=600,
        validation_alias="R2C_VAULT_WAIT_SECONDS",
        description="how long starting instances waits for an unreachable Vault (their"
        " secrets) before the step fails; the worker heartbeats meanwhile. At most 600: the"
        " step's own timeout (15 minutes) must leave room to start the instances",
    )
    payload_encryption: bool = Field(
        True,
        validation_alias="R2C_PAYLOAD_ENCRYPTION",
        description="encrypt every Temporal payload with AES-256-GCM (keys under R2C_HOME,"
        " or in Vault)",
    )
    payload_keys: Literal["file", "vault"] = Field(
        "file",
        validation_alias="R2C_PAYLOAD_KEYS",
        description="where the payload key ring lives: `file` (R2C_HOME/payload-keys.json, the"
        " embedded default) or `vault` (one KV v2 value, r2c/payload-keys in VAULT_KV_MOUNT of"
        " the Vault at VAULT_URL; never on disk)",
    )
    prometheus_url: str | None = Field(None, validation_alias="PROMETHEUS_URL")
    jaeger_endpoint: str | None = Field(None, validation_alias="JAEGER_ENDPOINT")
    temporal_address: str | None = Field(None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", validation_alias="TEMPORAL_NAMESPACE")
    temporal_port: int = Field(7233, ge=1, le=65535, validation_alias="R2C_TEMPORAL_PORT")
    temporal_ui_port: int = Field(8233, ge=1, le=65535, validation_alias="R2C_TEMPORAL_UI_PORT")
    temporal_server_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        validation_alias="R2C_TEMPORAL_METRICS_PORT",
        description="metrics of the embedded Temporal server; 0 picks a free port",
    )
    temporal_ui_url: str | None = Field(
        None,
        validation_alias="R2C_TEMPORAL_UI_URL",
        description="where links to the Temporal Web UI point; the embedded UI by default",
    )
    task_queue: str = Field("r2c-main", validation_alias="R2C_TASK_QUEUE")
    admin_api_key: str | None = Field(None, validation_alias="R2C_ADMIN_API_KEY", repr=False)
    ui_actions: UiActions = Field(
        "safe",
        validation_alias="R2C_UI_ACTIONS",
        description="which human actions a deployment accepts from the Temporal UI's signals:"
        " all, safe (those that only stop or undo) or none; `all` by default in development",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        validation_alias="R2C_MAX_BODY_BYTES",
        description="larger request bodies are refused with 413 before they are read",
    )
    live_poll_ms: int = Field(
        500,
        ge=100,
        le=5000,
        validation_alias="R2C_LIVE_POLL_MS",
        description="how often one poller per watched deployment or release reads its state "
        "for the event streams (docs/live-updates.md), whatever the number of watchers",
    )
    live_ping_seconds: float = Field(
        15.0,
        gt=0,
        le=300,
        validation_alias="R2C_LIVE_PING_SECONDS",
        description="a `: ping` comment this often keeps proxies from closing an idle stream",
    )
    live_max_watchers_per_target: int = Field(
        200,
        ge=1,
        le=100_000,
        validation_alias="R2C_LIVE_MAX_WATCHERS_PER_TARGET",
        description="event streams of one deployment or release at once (more: 429)",
    )
    live_max_watchers: int = Field(
        2000,
        ge=1,
        le=1_000_000,
        validation_alias="R2C_LIVE_MAX_WATCHERS",
        description="event streams of this API process at once (more: 503)",
    )
    live_max_stream_seconds: int = Field(
        1800,
        ge=10,
        le=86_400,
        validation_alias="R2C_LIVE_MAX_STREAM_SECONDS",
        description="an event stream is closed after this long (the client reconnects with "
        "Last-Event-ID and authenticates again: a revoked key stops being served)",
    )
    auth_failures_per_key: int = Field(
        5,
        ge=1,
        validation_alias="R2C_AUTH_FAILURES_PER_KEY",
        description="failed verifications of one key prefix per minute before 429",
    )
    auth_failures_per_address: int = Field(
        20,
        ge=1,
        validation_alias="R2C_AUTH_FAILURES_PER_ADDRESS",
        description="failed verifications from one client address per minute before 429",
    )
    page_token_secret: str | None = Field(
        None,
        validation_alias="R2C_PAGE_TOKEN_SECRET",
        repr=False,
        description="signs list page tokens; set the same value on every API replica",
    )

    # -- schedules (issue 10) -- only the schedules work edits this block

    # -- component health (issue 10) -- only the component health work edits this block
    health_check_every_seconds: int = Field(
        60,
        ge=0,
        le=86_400,
        validation_alias="R2C_HEALTH_CHECK_EVERY_SECONDS",
        description="how often the default schedule system-health-check probes every"
        " component (created or updated by `r2c worker` and so by `r2c up`); 0 removes it."
        " At least 5 seconds: each run is a workflow with its own history",
    )

    @field_validator("health_check_every_seconds")
    @classmethod
    def _health_check_interval(cls, value: int) -> int:
        if 0 < value < 5:
            raise ValueError("0 (no default health check) or at least 5 seconds")
        return value

    # -- events in (issue 10) -- only the events work edits this block
    event_max_bytes: int = Field(
        256 * 1024,
        ge=1024,
        le=1024 * 1024,
        validation_alias="R2C_EVENT_MAX_BYTES",
        description="larger CloudEvents and webhook deliveries are refused with 413",
    )
    events_retention_count: int = Field(
        10_000,
        ge=100,
        le=10_000_000,
        validation_alias="R2C_EVENTS_RETENTION_COUNT",
        description="received events kept in the store; older ones are dropped",
    )
    events_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        validation_alias="R2C_EVENTS_RETENTION_DAYS",
        description="received events older than this many days are dropped",
    )

    # -- notifications (issue 10) -- only the notifications work edits this block
    notifications_allow_private: bool | None = Field(
        None,
        validation_alias="R2C_NOTIFICATIONS_ALLOW_PRIVATE",
        description="notifications may go to loopback and private addresses (default: in"
        " development only); link-local and metadata addresses are always refused",
    )
    notification_retry_initial_seconds: float = Field(
        1.0,
        gt=0,
        le=3600,
        validation_alias="R2C_NOTIFICATION_RETRY_INITIAL_SECONDS",
        description="the first wait before a notification is sent again; it doubles each time",
    )
    notification_retry_max_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        validation_alias="R2C_NOTIFICATION_RETRY_MAX_SECONDS",
        description="the longest wait between two attempts of a notification",
    )
    notification_give_up_seconds: float = Field(
        86400.0,
        ge=60,
        le=7 * 86400,
        validation_alias="R2C_NOTIFICATION_GIVE_UP_SECONDS",
        description="a notification not accepted this long after its event is marked failed"
        " and the next one goes",
    )
    notification_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        validation_alias="R2C_NOTIFICATION_TIMEOUT_SECONDS",
        description="how long one POST to a receiver may take",
    )

    # -- tracing (issue 11) -- only the tracing work edits this block. The exporter itself is
    # configured by the standard OTEL_* variables (and JAEGER_ENDPOINT), read by core/tracing.
    router_trace_ratio: float = Field(
        0.05,
        ge=0,
        le=1,
        validation_alias="R2C_ROUTER_TRACE_RATIO",
        description="share of proxied requests without a sampled parent that the router"
        " records as spans (when tracing is on)",
    )
    router_traces_per_second: int = Field(
        20,
        ge=0,
        le=10_000,
        validation_alias="R2C_ROUTER_TRACES_PER_SECOND",
        description="at most this many router spans a second, whatever the ratio",
    )

    # -- logs (issue 11) -- only the logs work edits this block
    log_format: Literal["json", "ecs"] = Field(
        "json",
        validation_alias="LOG_FORMAT",
        description="`json` (our lines) or `ecs` (Elastic Common Schema, for ELK)",
    )
    log_file_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        validation_alias="R2C_LOG_MAX_BYTES",
        description="`r2c up` rotates a process's log file in R2C_HOME/logs past this size",
    )
    log_file_backups: int = Field(
        5,
        ge=0,
        le=100,
        validation_alias="R2C_LOG_BACKUPS",
        description="rotated log files kept per process",
    )

    # -- prometheus (issue 11) -- only the prometheus work edits this block
    with_prometheus: bool = Field(
        False,
        validation_alias="R2C_WITH_PROMETHEUS",
        description="`r2c up` also starts the installed Prometheus (/usr/bin/prometheus) on"
        " R2C_PROMETHEUS_PORT, scraping everything, and the analysis uses it",
    )
    prometheus_port: int = Field(9090, ge=1, le=65535, validation_alias="R2C_PROMETHEUS_PORT")

    # -- SLOs (issue 11) -- only the SLO work edits this block
    slo_sample_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        validation_alias="R2C_SLO_SAMPLE_SECONDS",
        description="the scheduled health check keeps a reading of each router's counters for"
        " the SLOs at most this often (a 90-day window holds 130,000 samples a target at 60)",
    )

    # -- audit chain (issue 12) -- only the audit chain work edits this block
    audit_key: Literal["file", "vault"] = Field(
        "file",
        validation_alias="R2C_AUDIT_KEY",
        description="where the audit chain's HMAC key ring lives: R2C_HOME/audit-hmac.key"
        " (file) or r2c/audit-hmac-keys in the configured Vault (vault)",
    )
    audit_retention_days: int = Field(
        0,
        ge=0,
        le=36_500,
        validation_alias="R2C_AUDIT_RETENTION_DAYS",
        description="`r2c audit prune` removes audit events older than this many days, leaving"
        " a signed checkpoint; 0 keeps every event",
    )
    audit_auth_failures_per_minute: int = Field(
        30,
        ge=0,
        le=10_000,
        validation_alias="R2C_AUDIT_AUTH_FAILURES_PER_MINUTE",
        description="failed authentications and denied authorizations audited per client"
        " address and per key prefix each minute (the rest are counted, not recorded)",
    )

    # -- transport (issue 12) -- only the transport work edits this block
    tls_cert: Path | None = Field(
        None,
        validation_alias="R2C_TLS_CERT",
        description="PEM certificate (chain) the API and its metrics port serve HTTPS with;"
        " with R2C_TLS_KEY",
    )
    tls_key: Path | None = Field(
        None,
        validation_alias="R2C_TLS_KEY",
        description="PEM private key of R2C_TLS_CERT (unencrypted; keep it 0600)",
    )
    tls_min_version: Literal["1.2", "1.3"] = Field(
        "1.3",
        validation_alias="R2C_TLS_MIN_VERSION",
        description="oldest TLS version the API and metrics ports accept: 1.3, or 1.2 for"
        " older clients",
    )
    allow_plaintext: bool = Field(
        False,
        validation_alias="R2C_ALLOW_PLAINTEXT",
        description="outside development, serve plain HTTP on a non-loopback R2C_HOST anyway"
        " (behind a TLS-terminating proxy or on a private network)",
    )
    temporal_tls: bool = Field(
        False,
        validation_alias="TEMPORAL_TLS",
        description="talk TLS to Temporal (implied by any TEMPORAL_TLS_* setting and by"
        " TEMPORAL_API_KEY), verifying the server with the system's CAs or TEMPORAL_TLS_CA",
    )
    temporal_tls_ca: Path | None = Field(
        None,
        validation_alias="TEMPORAL_TLS_CA",
        description="PEM CA certificate(s) the Temporal server's certificate must chain to",
    )
    temporal_tls_cert: Path | None = Field(
        None,
        validation_alias="TEMPORAL_TLS_CERT",
        description="PEM client certificate for mTLS to Temporal; with TEMPORAL_TLS_KEY",
    )
    temporal_tls_key: Path | None = Field(
        None,
        validation_alias="TEMPORAL_TLS_KEY",
        description="PEM private key of TEMPORAL_TLS_CERT",
    )
    temporal_tls_server_name: str | None = Field(
        None,
        max_length=253,
        pattern=r"^[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?$",
        validation_alias="TEMPORAL_TLS_SERVER_NAME",
        description="the name the Temporal server's certificate is checked against (and sent"
        " as SNI) when it differs from TEMPORAL_ADDRESS's host",
    )
    temporal_api_key: str | None = Field(
        None,
        repr=False,
        min_length=1,
        max_length=8192,
        validation_alias="TEMPORAL_API_KEY",
        description="Temporal Cloud API key, sent as `authorization: Bearer` over TLS",
    )

    # -- OIDC (issue 12) -- only the OIDC work edits this block
    oidc_issuer: str | None = Field(
        None,
        max_length=500,
        validation_alias="R2C_OIDC_ISSUER",
        description="OIDC issuer whose bearer tokens (JWTs) the API accepts alongside API keys;"
        " https (http only for a loopback issuer); unset: API keys only",
    )
    oidc_audience: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        validation_alias="R2C_OIDC_AUDIENCE",
        description="the `aud` a token must carry (the API's client id at the issuer)",
    )
    oidc_roles_claim: str = Field(
        "groups",
        pattern=r"^[A-Za-z0-9_.:/-]{1,100}$",
        validation_alias="R2C_OIDC_ROLES_CLAIM",
        description="the token claim listing the caller's groups (a list, or a space-separated"
        " string)",
    )
    oidc_role_map: Annotated[dict[str, Role | Grant], NoDecode] = Field(
        default_factory=dict,
        validation_alias="R2C_OIDC_ROLE_MAP",
        description='JSON object group -> viewer|operator|admin, e.g. {"platform-admins":'
        ' "admin", "developers": "operator"}; a token gets the highest role of its groups.'
        ' A group may map to a scoped role instead: {"role": "operator", "components":'
        ' ["demo"], "environments": ["staging"]} (docs/oidc.md)',
    )
    oidc_leeway_seconds: int = Field(
        60,
        ge=0,
        le=300,
        validation_alias="R2C_OIDC_LEEWAY_SECONDS",
        description="clock skew allowed on a token's exp, nbf and iat",
    )

    @field_validator("oidc_issuer", "oidc_audience", mode="before")
    @classmethod
    def _oidc_empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("oidc_issuer")
    @classmethod
    def _oidc_issuer_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlsplit(value)
        loopback = parsed.hostname in ("127.0.0.1", "::1", "localhost")
        # Keys fetched over plain HTTP could be swapped in transit, and with them every role.
        if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
            raise ValueError("expected an https:// URL (http:// only for a loopback issuer)")
        if parsed.query or parsed.fragment or not parsed.hostname:
            raise ValueError("expected the issuer URL, without query or fragment")
        return value

    @field_validator("oidc_role_map", mode="before")
    @classmethod
    def _oidc_role_map_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as err:
                raise ValueError(
                    'expected a JSON object such as {"platform-admins": "admin"}'
                ) from err
        if not isinstance(value, dict):
            raise ValueError('expected a JSON object such as {"platform-admins": "admin"}')
        if len(value) > 1000 or any(not 0 < len(str(group)) <= 256 for group in value):
            raise ValueError("expected at most 1000 groups, each 1 to 256 characters")
        # One message per group, naming it: a role, or a scoped role (core/models/scopes.py).
        return {group: _oidc_mapping(group, mapped) for group, mapped in value.items()}

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer is None:
            return self
        if self.oidc_audience is None:
            raise ValueError(
                "R2C_OIDC_AUDIENCE is required with R2C_OIDC_ISSUER: without it a token"
                " issued for any other application would be accepted"
            )
        if not self.oidc_role_map:
            raise ValueError(
                "R2C_OIDC_ROLE_MAP is required with R2C_OIDC_ISSUER: map at least one group to"
                ' a role, e.g. {"platform-admins": "admin"}'
            )
        return self

    # -- end of the OIDC block

    # -- API key lifecycle (issue 12) -- only the key lifecycle work edits this block
    apikey_max_lifetime_days: Annotated[dict[Role, int], NoDecode] = Field(
        default_factory=dict,
        validation_alias="R2C_APIKEY_MAX_LIFETIME_DAYS",
        description='JSON object role -> days, e.g. {"admin": 90, "operator": 365}: keys of a'
        " listed role must expire within that many days (created or rotated); unset: no limit",
    )

    @field_validator("apikey_max_lifetime_days", mode="before")
    @classmethod
    def _apikey_max_lifetime_json(cls, value: Any) -> Any:
        example = 'expected a JSON object such as {"admin": 90} (role -> days, 1..3650)'
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as err:
                raise ValueError(example) from err
        if not isinstance(value, dict):
            raise ValueError(example)
        for days in value.values():
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
                raise ValueError(example)
        return value

    # -- end of the API key lifecycle block

    # -- shared API state (issue 12) -- only the Redis work edits this block
    redis_url: str | None = Field(
        None,
        repr=False,  # its password is a secret
        max_length=2000,
        validation_alias="REDIS_URL",
        description="redis:// or rediss:// URL of the Redis the API replicas share: the key and"
        " token verification cache, revocation (every replica within 1 s) and the failed"
        " authentication limits; unset: all of it in process",
    )
    redis_prefix: str = Field(
        "r2c:",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        validation_alias="R2C_REDIS_PREFIX",
        description="prefix of every Redis key and channel of this system (several systems can"
        " share one Redis)",
    )
    redis_cache_seconds: int = Field(
        300,
        ge=5,
        le=3600,
        validation_alias="R2C_REDIS_CACHE_SECONDS",
        description="how long a verified key or token stays in the shared cache",
    )

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        # The message never repeats the value: it may hold a password.
        if value is None:
            return None
        try:
            parsed = urlsplit(value)
            parsed.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("expected a URL such as redis://:password@host:6379/0") from None
        if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
            raise ValueError("expected a redis:// or rediss:// URL with a host") from None
        return value

    # -- end of the shared API state block

    # -- web dashboard (issue 14) -- only the dashboard work edits this block
    ui_session_idle_minutes: int = Field(
        30,
        ge=1,
        le=24 * 60,
        validation_alias="R2C_UI_SESSION_IDLE_MINUTES",
        description="a dashboard session unused this long ends (sign in again)",
    )
    ui_session_max_hours: int = Field(
        12,
        ge=1,
        le=7 * 24,
        validation_alias="R2C_UI_SESSION_MAX_HOURS",
        description="a dashboard session ends this long after sign-in, however busy",
    )
    ui_oidc_client_id: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        validation_alias="R2C_UI_OIDC_CLIENT_ID",
        description="the dashboard's client id at R2C_OIDC_ISSUER (authorization code with"
        " PKCE); unset: R2C_OIDC_AUDIENCE",
    )
    ui_oidc_client_secret: str | None = Field(
        None,
        repr=False,
        max_length=2000,
        validation_alias="R2C_UI_OIDC_CLIENT_SECRET",
        description="the client's secret, for an issuer that wants one besides PKCE",
    )
    ui_public_url: str | None = Field(
        None,
        max_length=500,
        pattern=r"^https?://[^\s?#]+$",
        validation_alias="R2C_UI_PUBLIC_URL",
        description="the API's address as browsers see it (behind a proxy), for the OIDC"
        " redirect URI; unset: the address of the request",
    )
    # SAML 2.0 sign-in (api/ui/saml.py, docs/dashboard.md#saml-20)
    ui_saml_idp_metadata: str | None = Field(
        None,
        max_length=500,
        validation_alias="R2C_UI_SAML_IDP_METADATA",
        description="the SAML IdP's metadata: a file path, or an https:// URL (http:// only on"
        " loopback); unset: no SAML sign-in",
    )
    ui_saml_entity_id: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        validation_alias="R2C_UI_SAML_ENTITY_ID",
        description="the dashboard's SAML entity id; unset: <R2C_UI_PUBLIC_URL>/ui/saml/metadata",
    )
    ui_saml_sp_key_file: Path | None = Field(
        None,
        validation_alias="R2C_UI_SAML_SP_KEY_FILE",
        description="PEM private key the dashboard signs its AuthnRequests with (optional)",
    )
    ui_saml_sp_cert_file: Path | None = Field(
        None,
        validation_alias="R2C_UI_SAML_SP_CERT_FILE",
        description="PEM certificate of R2C_UI_SAML_SP_KEY_FILE, published in the SP metadata",
    )
    ui_saml_name_attribute: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:/-]{1,200}$",
        validation_alias="R2C_UI_SAML_NAME_ATTRIBUTE",
        description="the attribute (Name or FriendlyName) naming the person; unset: the NameID",
    )
    ui_saml_groups_attribute: str = Field(
        "groups",
        pattern=r"^[A-Za-z0-9_.:/-]{1,200}$",
        validation_alias="R2C_UI_SAML_GROUPS_ATTRIBUTE",
        description="the attribute (Name or FriendlyName) listing the person's groups",
    )
    ui_saml_role_map: Annotated[dict[str, Role | Grant], NoDecode] = Field(
        default_factory=dict,
        validation_alias="R2C_UI_SAML_ROLE_MAP",
        description="JSON object group -> role or scoped role, as R2C_OIDC_ROLE_MAP; unset:"
        " R2C_OIDC_ROLE_MAP",
    )

    @field_validator(
        "ui_saml_idp_metadata",
        "ui_saml_entity_id",
        "ui_saml_sp_key_file",
        "ui_saml_sp_cert_file",
        "ui_saml_name_attribute",
        mode="before",
    )
    @classmethod
    def _ui_saml_empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("ui_saml_role_map", mode="before")
    @classmethod
    def _ui_saml_role_map_json(cls, value: Any) -> Any:
        # The same JSON, limits and per-group messages as R2C_OIDC_ROLE_MAP.
        return cls._oidc_role_map_json(value)

    @model_validator(mode="after")
    def _ui_saml_complete(self) -> Settings:
        if self.ui_saml_idp_metadata is not None:
            _check_saml(self)
        return self

    @property
    def ui_saml_roles(self) -> dict[str, Role | Grant]:
        """The SAML groups' roles: R2C_UI_SAML_ROLE_MAP, else R2C_OIDC_ROLE_MAP."""
        return dict(self.ui_saml_role_map or self.oidc_role_map)

    # -- end of the web dashboard block

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        # A certificate without its key (or the reverse) is a half-made setup: refuse it now
        # rather than serve plain HTTP or connect without the client certificate.
        for cert_name, cert, key_name, key in (
            ("R2C_TLS_CERT", self.tls_cert, "R2C_TLS_KEY", self.tls_key),
            (
                "TEMPORAL_TLS_CERT",
                self.temporal_tls_cert,
                "TEMPORAL_TLS_KEY",
                self.temporal_tls_key,
            ),
        ):
            if (cert is None) != (key is None):
                missing = key_name if key is None else cert_name
                raise ValueError(f"{cert_name} and {key_name} go together; {missing} is not set")
        return self

    @field_validator(
        "tls_cert",
        "tls_key",
        "temporal_tls_ca",
        "temporal_tls_cert",
        "temporal_tls_key",
        "temporal_tls_server_name",
        "temporal_api_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def notifications_private_allowed(self) -> bool:
        """Whether loopback and private receivers are allowed (development: yes)."""
        if self.notifications_allow_private is None:
            return self.env == "development"
        return self.notifications_allow_private

    @model_validator(mode="before")
    @classmethod
    def _ui_actions_default(cls, data: Any) -> Any:
        # Development trusts whoever reaches the embedded Temporal UI; elsewhere only the
        # actions that stop or undo a deployment are open to it, unless configured.
        if isinstance(data, dict) and not any(k in data for k in ("ui_actions", "R2C_UI_ACTIONS")):
            env = data.get("env", data.get("R2C_ENV", "development"))
            data = {**data, "ui_actions": "all" if env == "development" else "safe"}
        return data

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        # The platform documents `LOG_LEVEL=debug`; logging wants the upper-case name.
        return value.strip().upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: explicit arguments, then the environment, then app.json.
        return (init_settings, env_settings, _AppJsonSource(settings_cls))

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("expected host:port, for example 127.0.0.1:7233")
        return value

    @field_validator("postgres_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("expected a URL of the form postgresql://user:password@host:5432/db")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        if self.env == "development":
            return self
        for name, value in (
            ("VAULT_TOKEN", self.vault_token),
            ("R2C_ADMIN_API_KEY", self.admin_api_key),
        ):
            if value is not None and value.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"{name} is a placeholder value; set a real secret outside development"
                )
        return self

    @property
    def database_url(self) -> str:
        """The async SQLAlchemy URL of the store: PostgreSQL when set, else SQLite under home."""
        if self.postgres_url:
            rest = self.postgres_url.split("://", 1)[1]
            return f"postgresql+psycopg://{rest}"
        return f"sqlite+aiosqlite:///{(self.home / 'r2c.db').resolve()}"

    @property
    def temporal_target(self) -> str:
        """The Temporal frontend to talk to: `TEMPORAL_ADDRESS`, else the embedded server."""
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def temporal_ui(self) -> str:
        """Base URL of the Temporal Web UI, for links in API answers and the CLI."""
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    @property
    def admin_key_file(self) -> Path:
        return self.home / "admin.key"


def config_dir() -> Path:
    """Where the per-environment `app.json` files live (`R2C_CONFIG_DIR` overrides)."""
    override = os.environ.get("R2C_CONFIG_DIR")
    if override:
        return Path(override)
    local = Path.cwd() / "config"
    return local if local.is_dir() else _PACKAGE_ROOT / "config"


class _AppJsonSource(PydanticBaseSettingsSource):
    """Reads `config/<R2C_ENV>/app.json`; its keys are the settings' field names."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        env = os.environ.get("R2C_ENV", "development")
        path = config_dir() / env / "app.json"
        self._values: dict[str, Any] = {}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise SettingsError(f"{path} is not valid JSON: {err}") from err
            if not isinstance(loaded, dict):
                raise SettingsError(f"{path} must hold a JSON object of settings")
            self._values = loaded

    def get_field_value(
        self,
        field: FieldInfo,  # noqa: ARG002
        field_name: str,
    ) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class SettingsError(Exception):
    """A setting has a value the system cannot start with; the message says which and why."""


def _check_saml(settings: Settings) -> None:
    """SAML sign-in's start-up checks (R2C_UI_SAML_*): what pysaml2 needs, before a browser
    finds out at sign-in."""
    import shutil  # only here: SAML is the one setting that needs a program on PATH

    if shutil.which("xmlsec1") is None:
        raise ValueError(
            "R2C_UI_SAML_IDP_METADATA is set but xmlsec1 is not on PATH: SAML signatures are"
            " checked with it (Debian: apt-get install xmlsec1)"
        )
    if settings.ui_public_url is None:
        raise ValueError(
            "R2C_UI_PUBLIC_URL is required with R2C_UI_SAML_IDP_METADATA: the IdP posts its"
            " answer to <R2C_UI_PUBLIC_URL>/ui/saml/acs, an address it must know in advance"
        )
    source = settings.ui_saml_idp_metadata or ""
    if source.startswith(("https://", "http://")):
        parsed = urlsplit(source)
        loopback = parsed.hostname in ("127.0.0.1", "::1", "localhost")
        # Metadata carries the IdP's signing certificate: fetched in clear, it could be swapped.
        if parsed.scheme != "https" and not loopback:
            raise ValueError(
                "R2C_UI_SAML_IDP_METADATA: expected an https:// URL (http:// only on loopback)"
            )
    else:
        path = Path(source).expanduser()
        try:
            head = path.read_bytes()[: 2 * 1024 * 1024]
        except OSError as err:
            raise ValueError(
                f"R2C_UI_SAML_IDP_METADATA: cannot read {path} ({err.strerror or err})"
            ) from None
        if b"IDPSSODescriptor" not in head:
            raise ValueError(
                f"R2C_UI_SAML_IDP_METADATA: {path} is not an IdP's SAML metadata (no"
                " IDPSSODescriptor)"
            )
    if (settings.ui_saml_sp_key_file is None) != (settings.ui_saml_sp_cert_file is None):
        raise ValueError(
            "R2C_UI_SAML_SP_KEY_FILE and R2C_UI_SAML_SP_CERT_FILE go together; set both or neither"
        )
    for name, file in (
        ("R2C_UI_SAML_SP_KEY_FILE", settings.ui_saml_sp_key_file),
        ("R2C_UI_SAML_SP_CERT_FILE", settings.ui_saml_sp_cert_file),
    ):
        if file is not None and not os.access(file, os.R_OK):
            raise ValueError(f"{name}: cannot read {file}")
    if not settings.ui_saml_roles:
        raise ValueError(
            "R2C_UI_SAML_ROLE_MAP (or R2C_OIDC_ROLE_MAP) is required with"
            ' R2C_UI_SAML_IDP_METADATA: map at least one group to a role, e.g. {"admins": "admin"}'
        )


def _oidc_mapping(group: str, mapped: Any) -> Role | Grant:
    if isinstance(mapped, Role | Grant):
        return mapped
    try:
        if isinstance(mapped, str):
            return Role(mapped)
        return Grant.model_validate(mapped)
    except (ValueError, ValidationError) as err:
        problems = (
            "; ".join(str(e["msg"]) for e in err.errors())
            if isinstance(err, ValidationError)
            else f"{mapped!r} is not a role"
        )
        raise ValueError(
            f"group {group!r}: expected 'viewer', 'operator' or 'admin', or"
            f' {{"role": ..., "components": [...], "environments": [...]}}: {problems}'
        ) from None


_SECRET_SETTINGS = (
    "VAULT_TOKEN",
    "VAULT_SECRET_ID",
    "R2C_ADMIN_API_KEY",
    "R2C_PAGE_TOKEN_SECRET",
    "POSTGRES_URL",
    "TEMPORAL_API_KEY",
    "REDIS_URL",
)
_ENV_NAMES = {
    name: str(field.validation_alias or name) for name, field in Settings.model_fields.items()
}


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one message naming each setting."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = e["loc"][0] if e["loc"] else ""
            name = _ENV_NAMES.get(str(loc), str(loc))
            shown = "" if name in _SECRET_SETTINGS else f" (got {e.get('input')!r})"
            problems.append(f"{name}: {e['msg']}{shown}" if name else e["msg"])
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None
