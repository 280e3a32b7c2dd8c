"""`r2c apikey create|list|revoke`, run as the real command on the test's store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.db import apikeys
from core.db.engine import make_engine, sessions
from core.settings import Settings


def _r2c(home: Path, database_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_URL"}
    env["R2C_HOME"] = str(home)
    if database_url:
        env["POSTGRES_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_create_list_revoke(tmp_path: Path, database_url: str | None) -> None:
    home = tmp_path / "home"
    created = _r2c(home, database_url, "apikey", "create", "deployer", "--role", "operator")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[0]
    assert key.startswith("r2c_") and "not shown again" in created.stdout

    settings = Settings(home=home, postgres_url=database_url)
    engine = make_engine(settings)
    async with sessions(engine)() as session:
        found = await apikeys.find_by_key(session, key)
        assert found is not None and apikeys.verify_hash(found[1], key)
        assert found[0].role == "operator"

    listed = _r2c(home, database_url, "apikey", "list")
    assert "deployer" in listed.stdout and "operator" in listed.stdout
    assert key not in listed.stdout

    duplicate = _r2c(home, database_url, "apikey", "create", "deployer")
    assert duplicate.returncode == 1 and "exists" in duplicate.stdout

    revoked = _r2c(home, database_url, "apikey", "revoke", "deployer")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    async with sessions(engine)() as session:
        assert await apikeys.find_by_key(session, key) is None
    await engine.dispose()
    assert "deployer" not in _r2c(home, database_url, "apikey", "list").stdout
    assert "deployer" in _r2c(home, database_url, "apikey", "list", "--all").stdout

    bad_role = _r2c(home, database_url, "apikey", "create", "x", "--role", "god")
    assert bad_role.returncode == 2 and "god" in bad_role.stderr
