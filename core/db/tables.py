"""The store's tables (SQLAlchemy 2 declarative). Changes here need an Alembic revision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002
    ) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002
    ) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ComponentRow(Base):
    __tablename__ = "components"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    runtime: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    config_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    slo: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # core/models/slo.py
    # [{"component": name, "version": constraint or null}] (migration 0013); NULL: none.
    depends_on: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class InstanceRow(Base):
    """A running instance of a component, as the infrastructure provider last reported it."""

    __tablename__ = "instances"

    # `<component>.<environment>.<slot>.<n>` (core/ids.py): 63 + 62 + 31 + a number + dots.
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    component_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("components.id", ondelete="CASCADE")
    )
    environment: Mapped[str] = mapped_column(String(63))
    version: Mapped[str] = mapped_column(String(128))
    slot: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(512))
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_instances_component_env", "component_id", "environment"),)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Lifecycle (issue 12): NULL expires_at is a key without expiry; a rotated key names its
    # successor and works until grace_until.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Scopes (issue 12): NULL is an unscoped key; else a list of grants, each
    # {"role", "components", "environments"} (core/models/scopes.py).
    grants: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class AuditEventRow(Base):
    """Who did what, when: one row per mutating action taken through the API or the CLI."""

    __tablename__ = "audit_events"
    # A unique prev_hash means two writers can never both extend the same head: the chain
    # cannot fork, whatever the isolation level.
    __table_args__ = (Index("uq_audit_events_prev_hash", "prev_hash", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The hash chain (core/audit_chain.py); None only on events from before migration 0010
    # until the first audited change after it signs them.
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DeploymentRow(Base):
    """One deployment: its request, where its workflow runs, and how it ended."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    component: Mapped[str] = mapped_column(String(63), index=True)
    environment: Mapped[str] = mapped_column(String(63))
    version: Mapped[str] = mapped_column(String(128))
    strategy: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32), index=True)
    workflow_id: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    initiator: Mapped[str] = mapped_column(String(120))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    rollback_of: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RevisionRow(Base):
    """What ran after each successful deployment of a (component, environment)."""

    __tablename__ = "revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(63))
    environment: Mapped[str] = mapped_column(String(63))
    revision: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(128))
    env: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    replicas: Mapped[int] = mapped_column(Integer)
    deployment_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_revisions_target", "component", "environment", "revision", unique=True),
    )
