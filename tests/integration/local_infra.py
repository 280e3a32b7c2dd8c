"""What the tests of the local provider and router share: a demo component as the registry
would hand it over, and instance-set specs."""

from __future__ import annotations

from typing import Any

from core.db.tables import utcnow
from core.models.components import Component, ComponentSpec
from core.models.infrastructure import InstanceSetSpec


def demo_component(name: str = "demo", **runtime: Any) -> Component:
    spec = ComponentSpec.model_validate(
        {
            "name": name,
            "runtime": {
                "command": ["r2c", "demo", "serve", "--port", "{port}", "--version", "{version}"],
                "health_check": {
                    "interval_seconds": 0.5,
                    "timeout_seconds": 1,
                    "unhealthy_threshold": 2,
                },
                **runtime,
            },
        }
    )
    now = utcnow()
    return Component(**spec.model_dump(), id=name, created_at=now, updated_at=now, revision=1)


def ensure(slot: str, version: str, count: int, env: str = "dev", **kw: Any) -> InstanceSetSpec:
    return InstanceSetSpec(
        component="demo", environment=env, version=version, slot=slot, count=count, **kw
    )
