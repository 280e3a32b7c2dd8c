"""`r2c apikey create --component/--environment`: a scoped key made from the command line,
listed with its scope, and kept by a rotation."""

from __future__ import annotations

from pathlib import Path

from core.db import apikeys
from core.db.engine import make_engine, sessions
from core.models.apikeys import Role
from core.models.scopes import Grant
from core.settings import Settings
from tests.integration.test_cli_apikeys import _r2c


async def test_a_scoped_key_from_the_command_line(tmp_path: Path, database_url: str | None) -> None:
    home = tmp_path / "home"
    args = ["apikey", "create", "ci", "--role", "operator", "--component", "demo"]
    created = _r2c(home, database_url, *args, "--environment", "staging", "--no-read-everything")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[0]
    assert "scope: operator on components demo in environments staging" in created.stdout

    listed = _r2c(home, database_url, "apikey", "list")
    assert "operator on components demo in environments staging" in listed.stdout

    settings = Settings(home=home, postgres_url=database_url)
    engine = make_engine(settings)
    demo_staging = (Grant(role=Role.OPERATOR, components=("demo",), environments=("staging",)),)
    async with sessions(engine)() as session:
        found = await apikeys.find_by_key(session, key)
        assert found is not None
        assert apikeys.principal(found[0]).grants == demo_staging
        rotated = await apikeys.rotate(session, found[0].id, 0, "test")
        await session.commit()
        new = await apikeys.find_by_key(session, rotated.key)
        assert new is not None and apikeys.principal(new[0]).grants == demo_staging
    await engine.dispose()
