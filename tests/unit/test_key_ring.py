"""The one key ring behind the payload keys and the audit keys: files written before it was
shared still load as they are, new keys keep their id forms, and a ring a process holds is
never silently replaced by a fresh one when its file disappears."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from core import audit_keys, payload_keys
from core.audit_keys import AuditKeyError, AuditKeyFile
from core.payload_keys import PayloadKeyFile, PayloadKeyFileError


def _old_ring(id_prefix: str) -> dict[str, object]:
    """A ring as the separate payload and audit modules wrote it, two keys, the newer current."""
    keys = [
        {
            "id": f"{id_prefix}{year}0101T000000Z-0a1b2c3d",
            "created_at": f"{year}-01-01T00:00:00+00:00",
            "key": base64.b64encode(bytes(range(start, start + 32))).decode(),
        }
        for year, start in ((2025, 0), (2026, 32))
    ]
    return {"current": keys[1]["id"], "keys": keys}


@pytest.mark.parametrize(
    ("module", "id_prefix"), [(payload_keys, ""), (audit_keys, "audit-")], ids=["payload", "audit"]
)
def test_files_written_before_the_shared_ring_load_and_keep_their_bytes_on_rotation(
    tmp_path: Path, module: ModuleType, id_prefix: str
) -> None:
    path = tmp_path / module.KEY_FILE_NAME
    path.write_bytes(json.dumps(_old_ring(id_prefix), indent=1).encode() + b"\n")
    old = path.read_text()

    ring = module.KIND.read_file(tmp_path)
    assert ring.current.secret == bytes(range(32, 64))
    assert ring.secrets()[f"{id_prefix}20250101T000000Z-0a1b2c3d"] == bytes(range(32))

    module.KIND.rotate_file(tmp_path)
    # The file is the old one to the byte, but for the new key added at the end of the list.
    rotated = json.loads(path.read_text())
    assert rotated["current"] == rotated["keys"][2]["id"]
    rotated["keys"].pop()
    rotated["current"] = ring.current_id
    assert json.dumps(rotated, indent=1) + "\n" == old


def test_new_keys_keep_their_id_forms(tmp_path: Path) -> None:
    when = r"\d{8}T\d{6}Z-[0-9a-f]{8}"
    assert re.fullmatch(when, payload_keys.rotate(tmp_path).current_id)
    assert re.fullmatch(f"audit-{when}", audit_keys.rotate_file(tmp_path).current_id)
    assert len(payload_keys.read_ring(tmp_path).current.secret) == 32


def test_a_running_process_refuses_a_vanished_key_file_rather_than_making_new_keys(
    tmp_path: Path,
) -> None:
    payloads = PayloadKeyFile(tmp_path, recheck_seconds=0)
    audits = AuditKeyFile(tmp_path)
    audits.ring()
    (tmp_path / payload_keys.KEY_FILE_NAME).unlink()
    (tmp_path / audit_keys.KEY_FILE_NAME).unlink()

    with pytest.raises(PayloadKeyFileError) as payload_err:
        payloads.current()
    with pytest.raises(AuditKeyError) as audit_err:
        audits.ring()
    assert payload_keys.KEY_FILE_NAME in payload_err.value.message
    assert audit_keys.KEY_FILE_NAME in audit_err.value.message
    assert not (tmp_path / payload_keys.KEY_FILE_NAME).exists()
    assert not (tmp_path / audit_keys.KEY_FILE_NAME).exists()
