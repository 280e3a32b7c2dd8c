"""No secret value anywhere but Vault and the instances' own environment: after a deployment
that uses two secrets and a rotation rolled out, every Temporal history event of every
workflow (raw, and decoded through the payload codec), every row of every store table, every
file under R2C_HOME, every API response the test received, the audit log and the log records
of the API and worker are scanned for every version of every secret value: 0 hits. The demo
asks for its configuration as a file too (`runtime.config_file`): that file, at its documented
location, is the one delivery that holds the values, so the scan skips exactly those files and
checks that they, and nothing else, hold them."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from sqlalchemy import MetaData, select
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from activities.infrastructure.local.config_files import CONFIG_FOLDER, FILE_NAME
from activities.infrastructure.local.orphans import target_processes
from cli.demo import demo_spec
from core.db.engine import make_engine
from core.temporal import data_converter
from tests.integration.deploying import FINAL, until
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.support import wait_for

URL = "/api/v1/configuration"
DEMO_DEV = {"component": "demo", "environment": "dev"}


class Scan:
    """Places scanned and where a secret was found."""

    def __init__(self, secrets: set[bytes]) -> None:
        self.secrets = secrets
        self.places: dict[str, int] = {}
        self.hits: list[str] = []

    def check(self, kind: str, where: str, data: bytes) -> None:
        self.places[kind] = self.places.get(kind, 0) + 1
        self.hits += [f"{kind}: {where}" for s in self.secrets if s in data]


def payloads(message: Message) -> Iterator[Payload]:
    """Every Payload inside a protobuf message, maps and repeated fields included."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif isinstance(value, Message):
            items = [value]
        else:  # a repeated field
            items = list(value)
        for item in items:
            if not isinstance(item, Message):
                continue
            if isinstance(item, Payload):
                yield item
            else:
                yield from payloads(item)


async def vault_values(openbao: OpenBaoServer) -> set[bytes]:
    """Every version of every secret in the KV v2 mount, as the bytes a leak would hold."""
    found: set[bytes] = set()
    headers = {"X-Vault-Token": openbao.token}
    async with httpx.AsyncClient(base_url=openbao.url, headers=headers) as http:

        async def walk(prefix: str) -> None:
            listed = await http.request("LIST", f"/v1/secret/metadata/{prefix}")
            assert listed.status_code == 200, listed.text
            for name in listed.json()["data"]["keys"]:
                if name.endswith("/"):
                    await walk(prefix + name)
                    continue
                meta = await http.get(f"/v1/secret/metadata/{prefix}{name}")
                for version in meta.json()["data"]["versions"]:
                    data = await http.get(f"/v1/secret/data/{prefix}{name}?version={version}")
                    for value in data.json()["data"]["data"].values():
                        found.add(str(value).encode())

        await walk("")
    return found


def delivered_file(home: Path, path: Path) -> bool:
    """Whether `path` is a set's rendered configuration file, the one place the provider may
    write secret values: `infra/<component>/<environment>/config/<slot>/configuration.json`."""
    parts = path.relative_to(home).parts
    return len(parts) == 6 and parts[0] == "infra" and parts[3:6:2] == (CONFIG_FOLDER, FILE_NAME)


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(e.decode().split("=", 1) for e in raw.split(b"\0") if b"=" in e)


def instances(system: System) -> list[dict[str, str]]:
    target = system.settings.home.resolve() / "infra" / "demo" / "dev"
    return [e for e in map(environ, target_processes(target)) if "R2C_INSTANCE" in e]


@pytest.fixture
async def system(make_system: Callable[..., Any], openbao: OpenBaoServer) -> System:
    built: System = await make_system(vault_url=openbao.url, vault_token=openbao.token)
    return built


async def test_no_secret_value_is_found_outside_vault_and_the_instances(
    system: System, openbao: OpenBaoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[tuple[str, bytes]] = []

    async def keep(response: httpx.Response) -> None:
        bodies.append((f"{response.request.method} {response.request.url}", await response.aread()))

    system.http.event_hooks["response"].append(keep)
    spec = demo_spec("demo", 2)
    spec["runtime"].update(config_file="json")
    spec["runtime"]["health_check"]["interval_seconds"] = 0.5
    resp = await system.http.post("/api/v1/components", json=spec, headers=system.auth())
    assert resp.status_code == 201, resp.text
    password, token = f"pw-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    for key, value in (("db.password", password), ("api.token", token)):
        body = {"value": value, "scope": DEMO_DEV, "secret": True}
        resp = await system.http.put(f"{URL}/{key}", json=body, headers=system.auth())
        assert resp.status_code == 201, resp.text
    body = {**DEMO_DEV, "version": "v1"}
    resp = await system.http.post("/api/v1/deployments", json=body, headers=system.auth())
    assert resp.status_code == 202, resp.text
    assert (await until(system, resp.json()["id"], *FINAL, within=90))["state"] == "succeeded"
    # The instances have them (so the scan below looks for values that did travel).
    envs = await asyncio.to_thread(instances, system)
    assert envs and all(e["DB_PASSWORD"] == password and e["API_TOKEN"] == token for e in envs)

    rotate = {
        "scope": DEMO_DEV,
        "generate": {"length": 40},
        "roll_out": {"strategy": {"type": "rolling"}},
    }
    resp = await system.http.post(f"{URL}/db.password/rotate", json=rotate, headers=system.auth())
    assert resp.status_code == 200, resp.text
    (rollout,) = resp.json()["rollouts"]
    done = await until(system, rollout["deployment_id"], *FINAL, within=90)
    assert done["state"] == "succeeded", done

    secrets = await vault_values(openbao)
    assert {password.encode(), token.encode()} < secrets and len(secrets) == 3, secrets
    rotated = (secrets - {password.encode(), token.encode()}).pop().decode()
    envs = await wait_for(
        lambda: asyncio.to_thread(instances, system),
        lambda found: bool(found) and all(e["DB_PASSWORD"] == rotated for e in found),
        what="the instances running the rotated password",
    )
    assert all(e["API_TOKEN"] == token for e in envs)
    resp = await system.http.get("/api/v1/audit?limit=1000", headers=system.auth())
    assert resp.status_code == 200 and resp.json(), resp.text
    system.http.event_hooks["response"].remove(keep)

    scan = Scan(secrets)
    await scan_histories(system, scan)
    await scan_store(system, scan)
    delivered = Scan(secrets)
    home = system.settings.home
    for path in sorted(home.rglob("*")):
        if path.is_file():
            found = delivered if delivered_file(home, path) else scan
            found.check("file under R2C_HOME", str(path), path.read_bytes())
    for where, data in bodies:
        scan.check("API response", where, data)
    for event in resp.json():
        scan.check("audit event", str(event.get("id")), repr(event).encode())
    for record in caplog.records:
        scan.check("log record", record.name, record.getMessage().encode())

    # The scan finds a value where one is: the instances' own environment.
    control = Scan(secrets)
    for pid in target_processes(system.settings.home.resolve() / "infra" / "demo" / "dev"):
        control.check(
            "instance environment",
            str(pid),
            b"\0".join(f"{k}={v}".encode() for k, v in environ(pid).items()),
        )
    assert control.hits, "the scan should find the secrets in the instances' environment"
    # Skipped: the rendered file the demo asked for (one per set), which does hold them.
    assert delivered.places == {"file under R2C_HOME": 1} and delivered.hits, delivered.hits

    total = sum(scan.places.values())
    print(f"secret scan: {total} places, {len(scan.hits)} hits: {scan.places}")
    assert scan.hits == []
    assert scan.places["raw history event"] >= 20 and scan.places["store row"] >= 10
    assert scan.places["file under R2C_HOME"] >= 5 and scan.places["API response"] >= 8


async def scan_histories(system: System, scan: Scan) -> None:
    """Every event of every workflow of the test's task queue, through a client without the
    codec (what the server stores) and decoded with it (what a key holder sees)."""
    raw = await Client.connect(
        system.settings.temporal_target, namespace=system.settings.temporal_namespace
    )
    codec = data_converter(system.settings).payload_codec
    assert codec is not None, "payloads are encrypted in this system"
    query = f"TaskQueue = '{system.settings.task_queue}'"

    async def listed() -> list[tuple[str, str]]:
        return [(w.id, w.run_id) async for w in raw.list_workflows(query)]

    runs = await wait_for(listed, lambda found: len(found) >= 2, what="workflows listed")
    readable = 0
    for workflow_id, run_id in runs:
        history = await raw.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        for event in history.events:
            where = f"{workflow_id} event {event.event_id}"
            scan.check("raw history event", where, event.SerializeToString())
            found = list(payloads(event))
            decoded = await codec.decode(found) if found else []
            data = b"".join(p.SerializeToString() for p in decoded)
            scan.check("decoded history event", where, data)
            readable += b'"component":"demo"' in data
    # Decoding works: the references the workflows carry are readable once decoded.
    assert readable > 0


async def scan_store(system: System, scan: Scan) -> None:
    engine = make_engine(system.settings)
    try:
        async with engine.connect() as conn:
            metadata = MetaData()
            await conn.run_sync(metadata.reflect)
            for table in metadata.sorted_tables:
                for row in (await conn.execute(select(table))).all():
                    scan.check("store row", table.name, repr(tuple(row)).encode())
    finally:
        await engine.dispose()
