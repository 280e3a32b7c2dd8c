"""The payload codec and its key ring: what is encrypted, what still decrypts after rotation, and
what is refused, with real keys in a real key file."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from core.codec import ENCODING, KEY_ID, EncryptionCodec, PayloadDecryptionError
from core.payload_keys import (
    KEY_FILE_NAME,
    PayloadKeyFile,
    PayloadKeyFileError,
    load_or_create,
    read_ring,
    rotate,
)
from tests.support import r2c_keys

MARKER = "marker-7f3c2a"


def payloads(*values: Any) -> list[Payload]:
    return pydantic_data_converter.payload_converter.to_payloads(list(values))


async def test_a_payload_round_trips_and_its_bytes_hide_the_value(tmp_path: Path) -> None:
    codec = EncryptionCodec(PayloadKeyFile(tmp_path))
    original = payloads({"secret_looking": MARKER}, 42)
    encoded = await codec.encode(original)
    for p in encoded:
        assert p.metadata["encoding"] == ENCODING
        assert p.metadata[KEY_ID] == read_ring(tmp_path).current_id.encode()
        assert MARKER.encode() not in p.SerializeToString()
    assert await codec.decode(encoded) == original


async def test_two_encryptions_of_one_payload_differ(tmp_path: Path) -> None:
    """A fresh nonce per payload: equal inputs do not show as equal ciphertexts."""
    codec = EncryptionCodec(PayloadKeyFile(tmp_path))
    first, second = await codec.encode(payloads(MARKER, MARKER))
    assert first.data != second.data


async def test_rotation_keeps_old_payloads_readable(tmp_path: Path) -> None:
    keys = PayloadKeyFile(tmp_path, recheck_seconds=0)
    codec = EncryptionCodec(keys)
    old = await codec.encode(payloads("before rotation"))
    rotated = rotate(tmp_path)
    new = await codec.encode(payloads("after rotation"))
    assert new[0].metadata[KEY_ID] == rotated.current_id.encode() != old[0].metadata[KEY_ID]
    assert len(rotated.keys) == 2
    assert await codec.decode([*old, *new]) == payloads("before rotation", "after rotation")


async def test_a_process_learns_a_rotation_made_elsewhere_when_it_meets_the_new_key(
    tmp_path: Path,
) -> None:
    reader = EncryptionCodec(PayloadKeyFile(tmp_path))  # rechecks only every few seconds
    rotate(tmp_path)
    writer = EncryptionCodec(PayloadKeyFile(tmp_path))
    assert await reader.decode(await writer.encode(payloads(MARKER))) == payloads(MARKER)


async def test_a_tampered_payload_is_refused_naming_its_key(tmp_path: Path) -> None:
    codec = EncryptionCodec(PayloadKeyFile(tmp_path))
    [sealed] = await codec.encode(payloads(MARKER))
    key_id = sealed.metadata[KEY_ID].decode()
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    sealed.data = bytes(flipped)
    with pytest.raises(PayloadDecryptionError, match=key_id) as caught:
        await codec.decode([sealed])
    assert "altered" in caught.value.message


async def test_a_payload_moved_to_another_key_id_is_refused(tmp_path: Path) -> None:
    """The key id is authenticated data: relabelling a payload does not get it decrypted."""
    codec = EncryptionCodec(PayloadKeyFile(tmp_path, recheck_seconds=0))
    [sealed] = await codec.encode(payloads(MARKER))
    rotated = rotate(tmp_path)
    sealed.metadata[KEY_ID] = rotated.current_id.encode()
    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await codec.decode([sealed])


async def test_a_payload_under_an_unknown_key_is_refused_naming_the_key(tmp_path: Path) -> None:
    elsewhere = EncryptionCodec(PayloadKeyFile(tmp_path / "other-home"))
    here = EncryptionCodec(PayloadKeyFile(tmp_path / "home"))
    [sealed] = await elsewhere.encode(payloads(MARKER))
    foreign_id = sealed.metadata[KEY_ID].decode()
    with pytest.raises(PayloadDecryptionError, match=foreign_id) as caught:
        await here.decode([sealed])
    assert caught.value.details == {"key_id": foreign_id}


async def test_errors_never_carry_key_material(tmp_path: Path) -> None:
    codec = EncryptionCodec(PayloadKeyFile(tmp_path))
    [sealed] = await codec.encode(payloads(MARKER))
    sealed.data = sealed.data[:5]  # shorter than a nonce
    with pytest.raises(PayloadDecryptionError) as caught:
        await codec.decode([sealed])
    text = f"{caught.value} {caught.value.hint} {caught.value.details} {caught.value!r}"
    for key in read_ring(tmp_path).keys:
        assert key.secret.hex() not in text and key.secret.hex() not in repr(key)
        assert json.loads((tmp_path / KEY_FILE_NAME).read_text())["keys"][0]["key"] not in text


async def test_an_unencrypted_payload_passes_through_unchanged(tmp_path: Path) -> None:
    """Histories recorded before encryption keep loading."""
    codec = EncryptionCodec(PayloadKeyFile(tmp_path))
    plain = payloads({"recorded": "before the codec"}, None)
    assert await codec.decode(plain) == plain


def test_the_key_file_is_private_and_holds_one_aes_256_key(tmp_path: Path) -> None:
    ring = load_or_create(tmp_path)
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(ring.keys) == 1 and len(ring.current.secret) == 32
    assert load_or_create(tmp_path) == ring
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE_NAME]  # no temporary file left


def test_a_damaged_key_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    load_or_create(tmp_path)
    path = tmp_path / KEY_FILE_NAME
    doc = json.loads(path.read_text())
    doc["keys"][0]["key"] = "c2hvcnQ="  # 5 bytes
    path.write_text(json.dumps(doc))
    with pytest.raises(PayloadKeyFileError, match=str(path)):
        read_ring(tmp_path)
    path.write_text("{not json")
    with pytest.raises(PayloadKeyFileError, match="unreadable"):
        load_or_create(tmp_path)


def test_listing_without_a_key_file_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(PayloadKeyFileError) as caught:
        read_ring(tmp_path)
    assert caught.value.hint is not None and "R2C_HOME" in caught.value.hint


def _create(home: str, barrier: Barrier, results: Any) -> None:
    barrier.wait()
    results.put(load_or_create(Path(home)).current_id)


def test_processes_creating_the_key_file_at_once_agree_on_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    racers = 6
    barrier = context.Barrier(racers)
    results = context.Queue()
    procs = [
        context.Process(target=_create, args=(str(tmp_path), barrier, results))
        for _ in range(racers)
    ]
    for proc in procs:
        proc.start()
    ids = {results.get(timeout=60) for _ in procs}
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    ring = read_ring(tmp_path)
    assert ids == {ring.current_id} and len(ring.keys) == 1
    assert sorted(os.listdir(tmp_path)) == [KEY_FILE_NAME]


def test_concurrent_rotations_keep_every_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    load_or_create(tmp_path)
    procs = [context.Process(target=rotate, args=(tmp_path,)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert len(read_ring(tmp_path).keys) == 5


def test_the_keys_commands_rotate_and_list_ids_never_keys(tmp_path: Path) -> None:
    env = {**os.environ, "R2C_HOME": str(tmp_path / "home"), "LOG_LEVEL": "WARNING"}
    env.pop("POSTGRES_URL", None)

    def r2c(*args: str) -> subprocess.CompletedProcess[str]:
        return r2c_keys(env, *args)

    missing = r2c("list")
    assert missing.returncode == 1 and "no payload key file" in missing.stdout
    assert r2c("rotate").returncode == 0
    rotated = r2c("rotate")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    listed = r2c("list")
    ring = read_ring(tmp_path / "home")
    assert len(ring.keys) == 2
    assert f"{ring.current_id}" in rotated.stdout
    for key in ring.keys:
        assert key.id in listed.stdout
        secret_text = json.loads((tmp_path / "home" / KEY_FILE_NAME).read_text())["keys"]
        for shown in (listed.stdout, listed.stderr, rotated.stdout, rotated.stderr):
            assert all(entry["key"] not in shown for entry in secret_text)
    assert [line.endswith("*") for line in listed.stdout.splitlines()[1:]] == [False, True]
