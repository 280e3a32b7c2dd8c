"""The hash chain's rules on events in memory: each kind of tampering is named at its place."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from core import audit_chain
from core.audit_chain import (
    GENESIS,
    Checkpoint,
    EventContent,
    Problem,
    StoredEvent,
    checkpoint_mac,
    verify,
)

KEY_ID = "audit-k1"
KEY = b"k" * 32
KEYS = {KEY_ID: KEY}
T0 = datetime(2026, 11, 29, 6, 0, 0, 123456, tzinfo=UTC)


def chain(n: int, *, first_id: int = 1, prev: str = GENESIS) -> list[StoredEvent]:
    events = []
    for i in range(first_id, first_id + n):
        content = EventContent(
            i, T0 + timedelta(seconds=i), "admin", "component.created", f"c{i}", {"n": i}, None
        )
        sealed = audit_chain.seal(prev, content, KEY, KEY_ID)
        events.append(StoredEvent(content, sealed.prev_hash, sealed.hash, sealed.mac, KEY_ID))
        prev = sealed.hash
    return events


def with_content(event: StoredEvent, **changes: object) -> StoredEvent:
    return dataclasses.replace(event, content=dataclasses.replace(event.content, **changes))


def test_the_hash_is_the_documented_formula() -> None:
    # docs/audit.md gives this definition to whoever verifies an export on their own.
    event = chain(1)[0]
    doc = {
        "id": 1,
        "at": "2026-11-29T06:00:01.123456Z",
        "actor": "admin",
        "action": "component.created",
        "target": "c1",
        "detail": {"n": 1},
        "request_id": None,
    }
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(f"{GENESIS}\n{body}".encode()).hexdigest()
    assert event.hash == expected
    mac = hmac.new(KEY, f"{KEY_ID}:{expected}".encode(), hashlib.sha256).hexdigest()
    assert event.mac == mac


def test_an_intact_chain_verifies() -> None:
    verdict = verify(chain(5), KEYS)
    assert verdict.intact
    assert (verdict.checked, verdict.head_id) == (5, 5)


def test_an_empty_chain_is_intact() -> None:
    assert verify([], KEYS).intact


def test_a_changed_field_is_named() -> None:
    events = chain(5)
    events[2] = with_content(events[2], target="other")
    broken = verify(events, KEYS).broken
    assert broken is not None
    assert (broken.id, broken.problem) == (3, Problem.CHANGED)


def test_a_recomputed_hash_fails_its_mac() -> None:
    events = chain(5)
    forged = with_content(events[2], actor="mallory")
    forged = dataclasses.replace(
        forged, hash=audit_chain.chain_hash(forged.prev_hash or "", forged.content)
    )
    events[2] = forged
    broken = verify(events, KEYS).broken
    assert broken is not None
    assert (broken.id, broken.problem) == (3, Problem.BAD_MAC)


def test_a_removed_event_is_a_gap() -> None:
    events = chain(5)
    del events[1]
    broken = verify(events, KEYS).broken
    assert broken is not None
    assert (broken.id, broken.problem) == (2, Problem.MISSING)
    assert "event 2 is missing" in broken.message


def test_removed_first_events_are_missing() -> None:
    broken = verify(chain(5)[2:], KEYS).broken
    assert broken is not None
    assert (broken.id, broken.problem) == (1, Problem.MISSING)


def test_swapped_events_are_named_as_reordered() -> None:
    events = chain(5)
    third, fourth = events[2], events[3]
    events[2] = dataclasses.replace(fourth, content=dataclasses.replace(fourth.content, id=3))
    events[3] = dataclasses.replace(third, content=dataclasses.replace(third.content, id=4))
    broken = verify(events, KEYS).broken
    assert broken is not None
    assert (broken.id, broken.problem) == (3, Problem.REORDERED)
    assert "written as event 4" in broken.message


def test_an_unknown_key_and_a_missing_mac_are_named() -> None:
    assert verify(chain(3), {"other": KEY}).broken == audit_chain.BrokenLink(
        1,
        Problem.UNKNOWN_KEY,
        "event 1 is signed with key 'audit-k1', which the key ring lacks",
    )
    events = chain(3)
    events[1] = dataclasses.replace(events[1], mac=None)
    broken = verify(events, KEYS).broken
    assert broken is not None
    assert (broken.id, broken.problem) == (2, Problem.UNSIGNED)


def test_a_chain_goes_on_from_a_signed_checkpoint() -> None:
    old = chain(10)
    head = old[6]
    assert head.hash is not None
    cp = Checkpoint(7, head.hash, checkpoint_mac(KEY, KEY_ID, 7, head.hash), KEY_ID)
    assert verify(old[7:], KEYS, cp).intact
    # A forged checkpoint (the hash moved without the key) is refused.
    forged = dataclasses.replace(cp, through_id=8)
    broken = verify(old[8:], KEYS, forged).broken
    assert broken is not None
    assert broken.problem is Problem.CHECKPOINT
    # An event removed just after the checkpoint is still a gap.
    broken = verify(old[8:], KEYS, cp).broken
    assert broken is not None
    assert (broken.id, broken.problem) == (8, Problem.MISSING)


def test_times_are_canonical_whatever_their_zone() -> None:
    event = chain(1)[0]
    naive = with_content(event, at=event.content.at.replace(tzinfo=None))
    assert audit_chain.chain_hash(GENESIS, naive.content) == event.hash
