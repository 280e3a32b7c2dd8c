"""Where a component's dependencies are: each instance gets `<NAME>_URL`, the dependency's
router in the same environment (real instances, read through /proc)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from activities.infrastructure.local.provider import LocalProvider
from core.models.components import DependencySpec
from core.models.infrastructure import InstanceSetSpec
from tests.integration.local_infra import demo_component


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.decode().split("=", 1) for entry in raw.split(b"\0") if entry)


def one(component: str, environment: str = "dev") -> InstanceSetSpec:
    return InstanceSetSpec(
        component=component, environment=environment, version="v1", slot="blue", count=1
    )


async def test_instances_learn_their_dependencies_routers(
    provider: LocalProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """db-migrate and api run in dev; web depends on both and on cache (not deployed), and
    sets API_URL itself: it gets DB_MIGRATE_URL (db-migrate's router in dev), its own API_URL,
    no CACHE_URL, and a warning names cache."""
    for name in ("db-migrate", "api"):
        await provider.ensure_instances(demo_component(name), one(name))
    web = demo_component("web", env={"API_URL": "http://127.0.0.1:1/mine"}).model_copy(
        update={
            "depends_on": [
                DependencySpec(component="db-migrate"),
                DependencySpec(component="api", version=">=1"),
                DependencySpec(component="cache"),
            ]
        }
    )
    with caplog.at_level(logging.WARNING, logger="r2c.infra.local"):
        info = await provider.ensure_instances(web, one("web"))
    env = environ(info.instances[0].pid)
    router = (await provider.state("db-migrate", "dev")).endpoint
    assert router is not None and router.startswith("http://127.0.0.1:")
    assert env["DB_MIGRATE_URL"] == router
    assert env["API_URL"] == "http://127.0.0.1:1/mine"
    assert "CACHE_URL" not in env
    warned = [r for r in caplog.records if "dependency not deployed" in r.getMessage()]
    assert [getattr(r, "dependency", None) for r in warned] == ["cache"]
