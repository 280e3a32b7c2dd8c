"""The admin key that `r2c up` guarantees: created once, kept in `R2C_HOME/admin.key` (0600)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from core.db import apikeys
from core.db.engine import make_engine, sessions
from core.db.tables import ApiKeyRow
from core.models.apikeys import Role
from core.settings import Settings

ADMIN_KEY_NAME = "admin"


def write_secret_file(path: Path, content: str) -> None:
    """Write a file only its owner can read, without a moment where others could."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content + "\n")
    os.chmod(path, 0o600)


async def ensure_admin_key(settings: Settings) -> tuple[Path, bool]:
    """Make sure an active admin key exists and is in the key file; True if it was created.

    `R2C_ADMIN_API_KEY`, when set, is the admin key; otherwise the key in the file is kept as
    long as it still matches an active key, and a new one is made when it does not.
    """
    path = settings.admin_key_file
    wanted = settings.admin_api_key
    if wanted is None and path.is_file():
        wanted = path.read_text().strip() or None
    engine = make_engine(settings)
    try:
        async with sessions(engine)() as session:
            active = (
                await session.execute(
                    select(ApiKeyRow).where(
                        ApiKeyRow.name == ADMIN_KEY_NAME,
                        ApiKeyRow.revoked_at.is_(None),
                        ApiKeyRow.replaced_by.is_(None),  # not a rotated one in its grace
                    )
                )
            ).scalar_one_or_none()
            if (
                active is not None
                and wanted is not None
                and apikeys.verify_hash(active.key_hash, wanted)
            ):
                if not path.is_file() or path.read_text().strip() != wanted:
                    write_secret_file(path, wanted)
                return path, False
            if active is not None:
                await apikeys.revoke(session, active.id)
            key = settings.admin_api_key  # None: a fresh one is generated
            created = await apikeys.create(
                session, ADMIN_KEY_NAME, Role.ADMIN, created_by="r2c up", key=key
            )
            await session.commit()
            write_secret_file(path, created.key)
            return path, True
    finally:
        await engine.dispose()
