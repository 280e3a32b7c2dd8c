"""The payload key ring kept in Vault (R2C_PAYLOAD_KEYS=vault), against a real OpenBao: created
once by racing processes, rotated without losing old keys, picked up by other processes, never
written under R2C_HOME, and a clear refusal when Vault is away."""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from cli.openbao import bao_binary
from core import payload_keys as file_ring
from core.codec import KEY_ID, EncryptionCodec
from core.db.audit import recent
from core.db.engine import make_engine, sessions
from core.payload_keys import KEY_FILE_NAME, KeyRing
from core.payload_keys_vault import (
    VAULT_KEY_PATH,
    PayloadKeysUnavailableError,
    PayloadKeyVault,
    load_or_create,
    read_ring,
    rotate,
)
from core.secrets import CheckAndSetConflictError, VersionedValue
from core.settings import Settings
from core.temporal import data_converter
from core.vault import VaultSecretStore
from tests.integration.openbao_fixture import OpenBaoServer
from tests.integration.system import System
from tests.support import r2c_keys, wait_for

WHERE = "Vault (test)"
MARKER = "marker-vault-5d1e"


def _store(server: OpenBaoServer) -> VaultSecretStore:
    """A client of its own, as each process has."""
    return VaultSecretStore(server.url, token=server.token)


def _payloads(*values: Any) -> list[Payload]:
    return pydantic_data_converter.payload_converter.to_payloads(list(values))


def _secrets_of(ring: KeyRing) -> list[bytes]:
    """Every form a key could take in a file: raw, and base64 as the ring document holds it."""
    return [form for k in ring.keys for form in (k.secret, base64.b64encode(k.secret))]


def _assert_no_key_under(home: Path, ring: KeyRing) -> None:
    assert not (home / KEY_FILE_NAME).exists()
    files = [p for p in home.rglob("*") if p.is_file()] if home.exists() else []
    for path in files:
        data = path.read_bytes()
        assert not any(secret in data for secret in _secrets_of(ring)), path


def _create(url: str, token: str, barrier: Barrier, results: Any) -> None:
    store = VaultSecretStore(url, token=token)
    barrier.wait()
    results.put(load_or_create(store, WHERE)[0].current_id)


def _rotate(url: str, token: str, barrier: Barrier) -> None:
    store = VaultSecretStore(url, token=token)
    barrier.wait()
    rotate(store, WHERE)


def _run_all(target: Callable[..., None], *args: Any, count: int) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    procs = [context.Process(target=target, args=(*args, barrier)) for _ in range(count)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0


def test_a_check_and_set_write_loses_to_a_newer_version_and_says_so(
    openbao: OpenBaoServer,
) -> None:
    store = _store(openbao)
    assert store.read_versioned("r2c/cas") is None
    assert store.write_if_version("r2c/cas", {"n": 1}, 0) == 1
    with pytest.raises(CheckAndSetConflictError):
        store.write_if_version("r2c/cas", {"n": 2}, 0)  # no longer absent
    assert store.write_if_version("r2c/cas", {"n": 2}, 1) == 2
    with pytest.raises(CheckAndSetConflictError):
        store.write_if_version("r2c/cas", {"n": 3}, 1)  # stale: version 2 was written since
    assert store.read_versioned("r2c/cas") == VersionedValue({"n": 2}, 2)


def test_processes_creating_the_ring_at_once_on_a_fresh_vault_agree_on_one_key(
    openbao: OpenBaoServer,
) -> None:
    context = multiprocessing.get_context("spawn")
    racers = 6
    barrier = context.Barrier(racers)
    results = context.Queue()
    procs = [
        context.Process(target=_create, args=(openbao.url, openbao.token, barrier, results))
        for _ in range(racers)
    ]
    for proc in procs:
        proc.start()
    ids = {results.get(timeout=60) for _ in procs}
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    ring = read_ring(_store(openbao), WHERE)
    assert ids == {ring.current_id} and len(ring.keys) == 1
    found = _store(openbao).read_versioned(VAULT_KEY_PATH)
    assert found is not None and found.version == 1  # one write won; the others only read


def test_concurrent_rotations_in_vault_keep_every_key(openbao: OpenBaoServer) -> None:
    first = load_or_create(_store(openbao), WHERE)[0].current
    _run_all(_rotate, openbao.url, openbao.token, count=4)
    ring = read_ring(_store(openbao), WHERE)
    assert len(ring.keys) == 5 and ring.keys[0] == first
    assert ring.current_id != first.id


async def test_a_rotation_keeps_old_payloads_decodable_and_another_process_picks_it_up(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    running = EncryptionCodec(PayloadKeyVault(_store(openbao), WHERE, recheck_seconds=0.5))
    old = await running.encode(_payloads({"before": MARKER}))
    old_id = old[0].metadata[KEY_ID].decode()

    # The rotation is made by another process: the CLI, as an operator would.
    env = {
        **os.environ,
        "R2C_HOME": str(tmp_path / "cli-home"),
        "R2C_PAYLOAD_KEYS": "vault",
        "VAULT_URL": openbao.url,
        "VAULT_TOKEN": openbao.token,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("POSTGRES_URL", None)
    rotated = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli", "keys", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    new_id = read_ring(_store(openbao), WHERE).current_id
    assert new_id != old_id and new_id in rotated.stdout

    # A process started after the rotation encrypts with the new key and still reads the old.
    fresh = EncryptionCodec(PayloadKeyVault(_store(openbao), WHERE))
    new = await fresh.encode(_payloads({"after": MARKER}))
    assert new[0].metadata[KEY_ID].decode() == new_id
    assert await fresh.decode(old) == _payloads({"before": MARKER})

    # The running one reads the new key's payload at once (an unknown id re-reads Vault) ...
    assert await running.decode(new) == _payloads({"after": MARKER})

    # ... and soon encrypts with it too.
    async def encrypts_with_new_key() -> bool:
        sample = await running.encode(_payloads(1))
        return sample[0].metadata[KEY_ID].decode() == new_id

    await wait_for(encrypts_with_new_key, what="the running process uses the new key", within=15)


async def test_the_keys_commands_use_vault_audit_the_rotation_and_never_show_a_key(
    openbao: OpenBaoServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(payload_keys="vault", vault_url=openbao.url, vault_token=openbao.token)
    env = {
        **os.environ,
        "R2C_HOME": str(settings.home),
        "R2C_PAYLOAD_KEYS": "vault",
        "VAULT_URL": openbao.url,
        "VAULT_TOKEN": openbao.token,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("POSTGRES_URL", None)
    if settings.postgres_url:
        env["POSTGRES_URL"] = settings.postgres_url

    def r2c(*args: str) -> subprocess.CompletedProcess[str]:
        return r2c_keys(env, *args)

    missing = r2c("list")
    assert missing.returncode == 1 and "no payload key ring in Vault" in missing.stdout
    outputs = [r2c("rotate"), r2c("rotate"), r2c("list")]
    assert all(out.returncode == 0 for out in outputs), [o.stdout + o.stderr for o in outputs]
    ring = read_ring(_store(openbao), WHERE)
    assert len(ring.keys) == 2
    listed = outputs[-1].stdout
    assert all(key.id in listed for key in ring.keys)
    assert [line.endswith("*") for line in listed.splitlines()[1:]] == [False, True]
    shown = "".join(out.stdout + out.stderr for out in outputs)
    assert not any(secret.decode() in shown for secret in _secrets_of(ring)[1::2])

    engine = make_engine(settings)
    try:
        async with sessions(engine)() as session:
            events = [e for e in await recent(session) if e.action == "payload_key.rotated"]
    finally:
        await engine.dispose()
    assert sorted(e.target for e in events) == sorted(k.id for k in ring.keys)
    audited = repr([(e.target, e.detail) for e in events]).encode()
    assert not any(secret in audited for secret in _secrets_of(ring))
    _assert_no_key_under(settings.home, ring)


async def test_a_system_with_keys_in_vault_encrypts_its_histories_and_keeps_no_key_on_disk(
    openbao: OpenBaoServer, make_system: Callable[..., Any]
) -> None:
    system: System = await make_system(
        noop=True, payload_keys="vault", vault_url=openbao.url, vault_token=openbao.token
    )
    started = await system.start(input={"components": [MARKER]})
    assert started.status_code == 202, started.text
    wf_id = str(started.json()["id"])
    await system.until_status(wf_id, "completed")

    ring = read_ring(_store(openbao), WHERE)
    assert len(ring.keys) == 1  # the API and the worker agreed on one ring
    # The history as Temporal holds it, read by a client without the codec.
    plain = await Client.connect(
        system.settings.temporal_target, namespace=system.settings.temporal_namespace
    )
    history = await plain.get_workflow_handle(wf_id).fetch_history()
    started_input = history.events[0].workflow_execution_started_event_attributes.input
    assert started_input.payloads
    assert all(p.metadata[KEY_ID].decode() == ring.current_id for p in started_input.payloads)
    assert MARKER.encode() not in b"".join(e.SerializeToString() for e in history.events)
    _assert_no_key_under(system.settings.home, ring)


async def test_a_key_file_put_into_vault_with_bao_becomes_the_ring_and_rotates_on(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    ring = file_ring.load_or_create(tmp_path)
    env = {**os.environ, "BAO_ADDR": openbao.url, "BAO_TOKEN": openbao.token}
    put = await asyncio.to_thread(
        subprocess.run,
        [
            bao_binary(),
            "kv",
            "put",
            "-cas=0",
            f"secret/{VAULT_KEY_PATH}",
            f"@{tmp_path / KEY_FILE_NAME}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert put.returncode == 0, put.stderr
    assert read_ring(_store(openbao), WHERE) == ring
    rotated = rotate(_store(openbao), WHERE)
    assert rotated.keys[:1] == ring.keys and len(rotated.keys) == 2


async def test_a_process_starting_while_vault_is_down_fails_naming_vault_and_the_setting(
    openbao: OpenBaoServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(payload_keys="vault", vault_url=openbao.url, vault_token=openbao.token)
    await openbao.stop()
    with pytest.raises(PayloadKeysUnavailableError) as caught:
        data_converter(settings)
    assert "Vault" in caught.value.message and "R2C_PAYLOAD_KEYS" in caught.value.message
    assert caught.value.hint is not None and "cannot encrypt or decrypt" in caught.value.hint
    assert openbao.token not in str(caught.value) + caught.value.hint
    assert not (settings.home / KEY_FILE_NAME).exists()  # no silent fallback to a local ring


def test_vault_keys_without_a_configured_vault_fail_saying_what_to_set(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(payload_keys="vault", vault_url=None)
    with pytest.raises(PayloadKeysUnavailableError) as caught:
        data_converter(settings)
    assert "R2C_PAYLOAD_KEYS" in caught.value.message
    assert caught.value.hint is not None and "VAULT_URL" in caught.value.hint
