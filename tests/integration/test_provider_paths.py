"""Names never lead the local provider outside its root, never make two targets share an
instance id, and the longest names fit in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from activities.infrastructure.activities import InfrastructureActivities
from activities.infrastructure.local.provider import LocalProvider
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.db.tables import ComponentRow, InstanceRow, utcnow
from core.errors import InvalidInputError
from core.models.infrastructure import InstanceSetSpec
from core.settings import Settings
from core.vault import open_secret_store
from tests.integration.local_infra import demo_component

ESCAPING = ["../../x", "/", ".", "..", "../x", "a/b", "", "x\x00"]


def spec(component: str, environment: str, slot: str = "blue", count: int = 1) -> InstanceSetSpec:
    return InstanceSetSpec(
        component=component, environment=environment, version="v1", slot=slot, count=count
    )


def sentinel(base: Path) -> Path:
    """A target-shaped folder outside R2C_HOME/infra, as a retire would walk it."""
    target = base / "dev"
    target.mkdir(parents=True)
    (target / "state.json").write_text(json.dumps({"component": "x", "environment": "dev"}))
    return target / "state.json"


async def test_retire_with_an_escaping_name_deletes_nothing_outside_the_root(
    provider: LocalProvider, tmp_path: Path
) -> None:
    # R2C_HOME is tmp_path/home, the root tmp_path/home/infra: `../../x` is tmp_path/x.
    precious = sentinel(tmp_path / "x")
    with pytest.raises(InvalidInputError):
        await provider.retire("../../x")
    with pytest.raises(InvalidInputError):
        await provider.retire("../../x", "dev")
    assert precious.exists()


async def test_a_link_planted_in_the_root_is_not_followed(
    provider: LocalProvider, tmp_path: Path
) -> None:
    precious = sentinel(tmp_path / "outside")
    provider.root.mkdir(parents=True)
    (provider.root / "evil").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(InvalidInputError):
        await provider.retire("evil")
    with pytest.raises(InvalidInputError):
        await provider.retire("evil", "dev")
    assert await provider.targets() == []
    assert precious.exists()


@pytest.mark.parametrize("name", ESCAPING)
async def test_every_entry_point_refuses_a_name_that_is_not_one_folder(
    provider: LocalProvider, tmp_path: Path, name: str
) -> None:
    component = demo_component()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(InvalidInputError):
        provider.files(name, "dev")
    with pytest.raises(InvalidInputError):
        provider.files("demo", name)
    with pytest.raises(InvalidInputError):
        await provider.environments(name)
    # An environment that exists nowhere: even a wrong answer here would delete nothing.
    with pytest.raises(InvalidInputError):
        await provider.retire(name, "r2c-none")
    with pytest.raises(InvalidInputError):
        await provider.remove_set(name, "dev", "blue")
    with pytest.raises(InvalidInputError):
        await provider.state("demo", name)
    with pytest.raises(InvalidInputError):
        await provider.set_weights(component, name, {"blue": 100})
    assert sorted(tmp_path.rglob("*")) == before


async def test_two_targets_whose_names_join_alike_never_share_an_instance_id(
    provider: LocalProvider,
) -> None:
    """Component `ab-c` in `d` and component `ab` in `c-d` joined with `-` were both
    `ab-c-d-blue-1`; with `.` (no name holds one) they stay apart."""
    first = await provider.ensure_instances(demo_component("ab-c"), spec("ab-c", "d"))
    second = await provider.ensure_instances(demo_component("ab"), spec("ab", "c-d"))
    ids = [first.instances[0].instance_id, second.instances[0].instance_id]
    assert ids == ["ab-c.d.blue.1", "ab.c-d.blue.1"]
    owners = set(provider.ports.held().values())
    assert set(ids) <= owners
    for info in (first, second):
        assert Path(info.instances[0].log_file).name == f"{info.instances[0].instance_id}.log"


async def test_an_empty_weight_table_is_refused_but_all_zero_is_allowed(
    provider: LocalProvider,
) -> None:
    component = demo_component()
    await provider.ensure_instances(component, spec("demo", "dev"))
    with pytest.raises(InvalidInputError) as caught:
        await provider.set_weights(component, "dev", {})
    assert "empty weight table" in caught.value.message
    state = await provider.set_weights(component, "dev", {"blue": 0})
    assert state.weights == {"blue": 0}


async def test_an_instance_of_the_longest_names_is_mirrored_into_the_store(
    provider: LocalProvider, tmp_path: Path, database_url: str | None
) -> None:
    """63-character component, 62-character environment, 31-character slot: the instance id
    is 160 characters, which the store's column (after migration 0003) holds."""
    name, env, slot = "c" * 63, "e" * 62, "s" * 31
    settings = Settings(home=tmp_path / "store", postgres_url=database_url)
    upgrade(settings)
    engine = make_engine(settings)
    try:
        maker = sessions(engine)
        async with maker() as session:
            now = utcnow()
            session.add(
                ComponentRow(
                    id="c1", name=name, runtime={}, created_at=now, updated_at=now, revision=1
                )
            )
            await session.commit()
        activities = InfrastructureActivities(provider, maker, open_secret_store(settings))
        await provider.ensure_instances(demo_component(name), spec(name, env, slot))
        state = await activities.mirror(name, env)
        async with maker() as session:
            ids = (await session.execute(select(InstanceRow.id))).scalars().all()
        assert ids == [state.sets[0].instances[0].instance_id] == [f"{name}.{env}.{slot}.1"]
    finally:
        await engine.dispose()
