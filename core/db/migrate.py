"""Applies the Alembic migrations at start-up: every process can call it, it is idempotent."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from core.settings import Settings

_HERE = Path(__file__).resolve().parent
# Any constant works: it only makes concurrent start-ups on PostgreSQL take turns.
_PG_LOCK_ID = 724_201_501


def sync_url(settings: Settings) -> str:
    """The synchronous twin of the store URL (Alembic runs synchronously)."""
    return settings.database_url.replace("sqlite+aiosqlite", "sqlite", 1)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings) -> None:
    """Bring the store's schema to the newest revision."""
    if settings.postgres_url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    url = sync_url(settings)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
