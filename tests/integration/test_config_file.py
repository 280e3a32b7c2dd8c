"""A component that asks for its configuration as a file (`runtime.config_file: "json"`) gets
the resolved configuration (key -> value, JSON values as they are, secrets read from a real
OpenBao) in a 0600 file of a 0700 per-set folder, and its path in R2C_CONFIG_FILE. A real
instance reads the file at start and serves what it read; the file follows the set's revision
and disappears with the set and with the target."""

from __future__ import annotations

import json
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.infrastructure.activities import InfrastructureActivities
from activities.infrastructure.local.config_files import config_path
from activities.infrastructure.local.provider import LocalProvider
from core.db.engine import make_engine, sessions
from core.models.infrastructure import InstanceSetSpec, SetInfo
from core.vault import open_secret_store
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System

URL = "/api/v1/configuration"

# An instance that reads its configuration file once, at start, and serves what it read.
READER = """
import http.server, os, sys
body = open(os.environ["R2C_CONFIG_FILE"], "rb").read()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def reader_runtime(config_file: str | None) -> dict[str, Any]:
    """The reader; without a file to read, a plain HTTP server (its `/` answers 200)."""
    command = [sys.executable, "-c", READER, "{port}"]
    if config_file is None:
        command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
    return {
        "command": command,
        "health_check": {"path": "/", "interval_seconds": 0.5, "timeout_seconds": 1},
        "config_file": config_file,
    }


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.decode().split("=", 1) for e in raw.split(b"\0") if e)


@dataclass
class Edge:
    """The API (to write configuration) and the activities a worker runs, on one store."""

    system: System
    provider: LocalProvider
    activities: InfrastructureActivities
    http: httpx.AsyncClient

    async def put(self, key: str, value: Any, secret: bool = False) -> int:
        """Write an entry for reader/dev; returns the target's revision afterwards."""
        body = {"value": value, "secret": secret, "scope": {"component": "reader"}}
        resp = await self.system.http.put(f"{URL}/{key}", json=body, headers=self.system.auth())
        assert resp.status_code in (200, 201), resp.text
        shown = await self.system.http.get(
            f"{URL}?component=reader&environment=dev", headers=self.system.auth()
        )
        return int(shown.json()["revision"])

    async def ensure(self, revision: int | None, slot: str = "blue", count: int = 1) -> SetInfo:
        spec = InstanceSetSpec(
            component="reader",
            environment="dev",
            version="v1",
            slot=slot,
            count=count,
            config_revision=revision,
        )
        result: SetInfo = await ActivityEnvironment().run(self.activities.ensure_instances, spec)
        return result

    def path(self, slot: str = "blue") -> Path:
        return config_path(self.provider.files("reader", "dev"), slot)

    async def served(self, info: SetInfo) -> list[Any]:
        """What each instance read from its file."""
        return [(await self.http.get(i.url)).json() for i in info.instances]


@pytest.fixture
async def make_edge(
    make_system: Callable[..., Any], openbao: OpenBaoServer
) -> AsyncIterator[Callable[..., Any]]:
    built: list[tuple[Edge, Any]] = []

    async def build(config_file: str | None = "json") -> Edge:
        system: System = await make_system(
            worker=False, vault_url=openbao.url, vault_token=openbao.token
        )
        component = {"name": "reader", "runtime": reader_runtime(config_file)}
        resp = await system.http.post("/api/v1/components", json=component, headers=system.auth())
        assert resp.status_code == 201, resp.text
        engine = make_engine(system.settings)
        http = httpx.AsyncClient()
        provider = LocalProvider(system.settings.home, http, startup_timeout=30)
        activities = InfrastructureActivities(
            provider, sessions(engine), open_secret_store(system.settings), 30
        )
        edge = Edge(system, provider, activities, http)
        built.append((edge, engine))
        return edge

    yield build
    for edge, engine in built:
        for component, environment in await edge.provider.targets():
            await edge.provider.retire(component, environment)
        await edge.http.aclose()
        await engine.dispose()


async def test_an_instance_reads_its_resolved_configuration_secrets_included_from_a_0600_file(
    make_edge: Callable[..., Any],
) -> None:
    edge: Edge = await make_edge()
    password = f"pw-{uuid.uuid4().hex}"
    await edge.put("db.pool_size", 5)
    await edge.put("feature.flags", {"beta": True, "ratio": 0.5})
    revision = await edge.put("db.password", password, secret=True)
    expected = {"db.pool_size": 5, "feature.flags": {"beta": True, "ratio": 0.5}}
    expected["db.password"] = password

    info = await edge.ensure(revision, count=2)

    path = edge.path()
    assert await edge.served(info) == [expected, expected]
    assert json.loads(path.read_text()) == expected
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for instance in info.instances:
        env = environ(instance.pid)
        assert env["R2C_CONFIG_FILE"] == str(path)
        assert env["DB_PASSWORD"] == password  # the variables are delivered as well
    # The one file of the target that holds the secret is the one the component asked for.
    target = edge.provider.files("reader", "dev").dir
    holding = [p for p in target.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert holding == [path]


async def test_the_file_follows_the_sets_revision_and_disappears_with_the_set_and_the_target(
    make_edge: Callable[..., Any],
) -> None:
    edge: Edge = await make_edge()
    first = await edge.put("log.level", "info")
    await edge.ensure(first)
    second = await edge.put("log.level", "debug")

    info = await edge.ensure(second)

    assert await edge.served(info) == [{"log.level": "debug"}]
    assert json.loads(edge.path().read_text()) == {"log.level": "debug"}
    green = await edge.ensure(second, slot="green")
    assert edge.path("green").exists() and await edge.served(green) == [{"log.level": "debug"}]

    await edge.provider.remove_set("reader", "dev", "blue")
    assert not edge.path("blue").parent.exists()
    assert edge.path("green").exists()
    await edge.provider.retire("reader", "dev")
    assert not edge.path("green").exists()
    assert not edge.provider.files("reader", "dev").dir.exists()


async def test_a_set_without_configuration_reads_an_empty_object(
    make_edge: Callable[..., Any],
) -> None:
    edge: Edge = await make_edge()

    info = await edge.ensure(None)

    assert await edge.served(info) == [{}]
    assert stat.S_IMODE(edge.path().stat().st_mode) == 0o600


async def test_a_component_that_does_not_ask_for_the_file_gets_no_file_and_no_variable(
    make_edge: Callable[..., Any],
) -> None:
    edge: Edge = await make_edge(config_file=None)
    await edge.put("db.password", f"pw-{uuid.uuid4().hex}", secret=True)
    revision = await edge.put("log.level", "info")

    info = await edge.ensure(revision)

    assert "R2C_CONFIG_FILE" not in environ(info.instances[0].pid)
    assert not edge.path().parent.exists()
