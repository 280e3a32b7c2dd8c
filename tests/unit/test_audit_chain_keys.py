"""The audit key file: private, created once however many processes race for it, rotated
without losing a key, and a damaged file refused without quoting it."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core import audit_keys
from core.audit_keys import AuditKeyError, AuditKeyFile


def test_the_key_file_is_private_and_made_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ThreadPoolExecutor(8) as pool:
        rings = list(pool.map(lambda _: audit_keys.load_or_create_file(home), range(16)))
    assert len({r.current_id for r in rings}) == 1
    mode = stat.S_IMODE(audit_keys.key_file(home).stat().st_mode)
    assert mode == 0o600
    assert [p.name for p in home.iterdir() if p.name.startswith(".audit")] == []


def test_rotation_keeps_old_keys_and_a_running_source_sees_it(tmp_path: Path) -> None:
    source = AuditKeyFile(tmp_path)
    first = source.ring()
    rotated = audit_keys.rotate_file(tmp_path)
    assert rotated.current_id != first.current_id
    assert set(rotated.secrets()) == {first.current_id, rotated.current_id}
    assert source.ring().current_id == rotated.current_id


def test_a_damaged_file_is_refused_without_quoting_it(tmp_path: Path) -> None:
    ring = audit_keys.load_or_create_file(tmp_path)
    doc = audit_keys.document(ring)
    secret = doc["keys"][0]["key"]
    doc["keys"][0]["key"] = secret[:-4] + "!!!!"
    audit_keys.key_file(tmp_path).write_text(json.dumps(doc))
    with pytest.raises(AuditKeyError) as err:
        audit_keys.read_file(tmp_path)
    assert "not usable" in err.value.message and secret[:10] not in err.value.message
    assert "backup" in (err.value.hint or "")
