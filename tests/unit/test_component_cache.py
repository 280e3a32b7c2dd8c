"""The worker's short-lived copy of component specs: weight steps reuse it, starts refresh it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from activities.infrastructure.component_cache import ComponentCache
from core.errors import NotFoundError
from core.models.components import Component


def spec(name: str, path: str) -> Component:
    return Component.model_validate(
        {
            "id": "00000000-0000-0000-0000-000000000001",
            "created_at": "2026-11-29T00:00:00Z",
            "updated_at": "2026-11-29T00:00:00Z",
            "revision": 1,
            "name": name,
            "runtime": {"command": ["app", "{port}"], "health_check": {"path": path}},
        }
    )


class Store:
    """The store as the cache sees it: a name in, a spec out, and how often it was asked."""

    def __init__(self) -> None:
        self.paths = {"demo": "/healthz"}
        self.reads = 0

    async def load(self, name: str) -> Component:
        self.reads += 1
        if name not in self.paths:
            raise NotFoundError(f"component {name!r} not found")
        return spec(name, self.paths[name])


def run(coro: Coroutine[Any, Any, Component]) -> Component:
    return asyncio.run(coro)


def test_weight_steps_within_the_ttl_read_the_store_once() -> None:
    store, now = Store(), [100.0]
    cache = ComponentCache(store.load, ttl=5, clock=lambda: now[0])
    for _ in range(10):
        run(cache.get("demo"))
        now[0] += 0.1
    assert store.reads == 1


def test_a_changed_spec_is_seen_after_the_ttl() -> None:
    store, now = Store(), [100.0]
    cache = ComponentCache(store.load, ttl=5, clock=lambda: now[0])
    assert run(cache.get("demo")).runtime.health_check.path == "/healthz"
    store.paths["demo"] = "/ready"
    assert run(cache.get("demo")).runtime.health_check.path == "/healthz"  # within the TTL
    now[0] += 5
    assert run(cache.get("demo")).runtime.health_check.path == "/ready"


def test_a_fresh_read_refreshes_the_copy_at_once() -> None:
    store, now = Store(), [100.0]
    cache = ComponentCache(store.load, ttl=5, clock=lambda: now[0])
    run(cache.get("demo"))
    store.paths["demo"] = "/ready"
    assert run(cache.get("demo", fresh=True)).runtime.health_check.path == "/ready"
    assert run(cache.get("demo")).runtime.health_check.path == "/ready"


def test_a_deleted_component_is_not_found_once_the_copy_is_old() -> None:
    store, now = Store(), [100.0]
    cache = ComponentCache(store.load, ttl=5, clock=lambda: now[0])
    run(cache.get("demo"))
    del store.paths["demo"]
    now[0] += 6
    with pytest.raises(NotFoundError):
        run(cache.get("demo"))


def test_the_cache_is_bounded() -> None:
    store = Store()
    store.paths = {f"c{i}": "/healthz" for i in range(1100)}
    cache = ComponentCache(store.load)
    for name in store.paths:
        run(cache.get(name))
    assert len(cache._entries) == 1024
    assert "c0" not in cache._entries and "c1099" in cache._entries
