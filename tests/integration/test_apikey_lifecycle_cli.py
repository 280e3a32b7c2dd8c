"""`r2c apikey create --expires-in` and `r2c apikey rotate --grace`, run as the real command on
the test's store, with the maximum-lifetime policy from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.db import apikeys
from core.db.engine import make_engine, sessions
from core.settings import Settings


def _r2c(
    home: Path, database_url: str | None, *args: str, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_URL"}
    env["R2C_HOME"] = str(home)
    env.update(env_extra)
    if database_url:
        env["POSTGRES_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _id_of(listing: str, name: str) -> str:
    return next(line.split()[0] for line in listing.splitlines() if f" {name} " in line)


async def test_create_with_expiry_rotate_with_grace(
    tmp_path: Path, database_url: str | None
) -> None:
    home = tmp_path / "home"
    created = _r2c(home, database_url, "apikey", "create", "deployer", "--expires-in", "30d")
    assert created.returncode == 0, created.stdout + created.stderr
    old_key = created.stdout.splitlines()[0]
    assert "expires " in created.stdout
    listing = _r2c(home, database_url, "apikey", "list").stdout
    old_id = _id_of(listing, "deployer")

    rotated = _r2c(home, database_url, "apikey", "rotate", old_id, "--grace", "1h")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    new_key = rotated.stdout.splitlines()[0]
    assert new_key.startswith("r2c_") and new_key != old_key
    assert "old key works until" in rotated.stdout and old_key not in rotated.stdout

    settings = Settings(home=home, postgres_url=database_url)
    engine = make_engine(settings)
    async with sessions(engine)() as session:
        old_found = await apikeys.find_by_key(session, old_key)
        new_found = await apikeys.find_by_key(session, new_key)
    await engine.dispose()
    assert old_found is not None and new_found is not None
    old_row, new_row = old_found[0], new_found[0]
    assert old_row.replaced_by == new_row.id and old_row.grace_until is not None
    assert new_row.expires_at is not None  # the old key's 30 days, from the rotation

    listing = _r2c(home, database_url, "apikey", "list").stdout
    assert "rotated, works until" in listing and old_key not in listing and new_key not in listing

    again = _r2c(home, database_url, "apikey", "rotate", old_id)
    assert (
        again.returncode == 1 and "already rotated" in again.stdout and new_row.id in again.stdout
    )

    bad_grace = _r2c(home, database_url, "apikey", "rotate", new_row.id, "--grace", "8d")
    assert bad_grace.returncode == 2 and "7d" in bad_grace.stderr
    bad_expiry = _r2c(home, database_url, "apikey", "create", "x", "--expires-in", "forever")
    assert bad_expiry.returncode == 2 and "3650d" in bad_expiry.stderr


async def test_the_policy_applies_to_the_cli(tmp_path: Path, database_url: str | None) -> None:
    home = tmp_path / "home"
    policy = {"R2C_APIKEY_MAX_LIFETIME_DAYS": '{"admin": 90}'}
    forever = _r2c(home, database_url, "apikey", "create", "boss", "--role", "admin", **policy)
    assert forever.returncode == 1 and "90 days" in forever.stdout and "90d" in forever.stdout
    ok = _r2c(
        home,
        database_url,
        "apikey",
        "create",
        "boss",
        "--role",
        "admin",
        "--expires-in",
        "90d",
        **policy,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = _r2c(home, database_url, "apikey", "list", R2C_APIKEY_MAX_LIFETIME_DAYS='{"admin": 0}')
    assert (
        bad.returncode != 0 and "R2C_APIKEY_MAX_LIFETIME_DAYS" in (bad.stdout + bad.stderr).upper()
    )
