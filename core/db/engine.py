"""Engines and sessions for the store: SQLite (WAL) by default, PostgreSQL via psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from core.audit_key_store import open_audit_keys
from core.db import audit
from core.settings import Settings


def make_engine(settings: Settings) -> AsyncEngine:
    """The async engine of the store named by the settings; the folder is created if needed."""
    url = settings.database_url
    if url.startswith("sqlite"):
        settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    # Audit events written through this engine are signed with this system's key (lazily:
    # nothing is read until the first event).
    audit.use_keys(engine, open_audit_keys(settings))
    return engine


def sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Sessions of the engine; objects stay readable after a commit (nothing is re-fetched)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    # WAL lets the API read while the worker writes; foreign keys are off by default in SQLite.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
