"""The audit trail's hash chain: canonical form, hashes, MACs and verification (pure functions).

Every audit event is linked to the one before it, as Vault's audit devices link their entries:

    canonical = UTF-8 JSON of {"id", "at", "actor", "action", "target", "detail",
                "request_id"}, keys sorted, no spaces, `at` as 2026-01-02T03:04:05.123456Z
    hash      = SHA-256( prev_hash || "\\n" || canonical )            (hex)
    mac       = HMAC-SHA256( key[key_id], key_id || ":" || hash )    (hex)

`prev_hash` is the previous event's `hash` (64 zeros for the first event ever, or the hash in
the signed checkpoint left by pruning). Ids are consecutive: the writer gives each event the
id after the head's. Changing a field breaks the event's hash; recomputing the hash breaks its
MAC, and the key is kept outside the database; removing an event leaves a gap in the ids;
moving one changes its id, which is part of what was hashed.

What a chain alone cannot show: that events were cut off its end (or all of it replaced).
That is what an export to a SIEM is for (see docs/audit.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

GENESIS = "0" * 64
# How far from its place a moved event is looked for, to name a reordering as such.
REORDER_WINDOW = 64


@dataclass(frozen=True)
class EventContent:
    """What an audit event says: the fields its hash covers."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: Mapping[str, Any]
    request_id: str | None


@dataclass(frozen=True)
class Seal:
    """How an event is linked and signed."""

    prev_hash: str
    hash: str
    mac: str
    key_id: str


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back from the store; the seal's fields are None where never set."""

    content: EventContent
    prev_hash: str | None
    hash: str | None
    mac: str | None
    key_id: str | None


@dataclass(frozen=True)
class Checkpoint:
    """The signed head of the events pruned so far: the chain goes on from `hash`."""

    through_id: int
    hash: str
    mac: str
    key_id: str


def timestamp(at: datetime) -> str:
    """`at` in UTC with microseconds, the one way a time is written into the canonical form."""
    if at.tzinfo is None:  # the store hands back UTC; a naive time is UTC too
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(content: EventContent, *, event_id: int | None = None) -> bytes:
    """The bytes an event's hash covers (with another id when `event_id` is given)."""
    doc = {
        "id": content.id if event_id is None else event_id,
        "at": timestamp(content.at),
        "actor": content.actor,
        "action": content.action,
        "target": content.target,
        "detail": dict(content.detail),
        "request_id": content.request_id,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, content: EventContent, *, event_id: int | None = None) -> str:
    """The hash of `content` following the event whose hash is `prev_hash`."""
    data = prev_hash.encode("ascii") + b"\n" + canonical(content, event_id=event_id)
    return hashlib.sha256(data).hexdigest()


def sign(key: bytes, key_id: str, event_hash: str) -> str:
    """The MAC of a hash under the key `key_id`."""
    message = f"{key_id}:{event_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal(prev_hash: str, content: EventContent, key: bytes, key_id: str) -> Seal:
    """Link `content` after `prev_hash` and sign it."""
    event_hash = chain_hash(prev_hash, content)
    return Seal(prev_hash, event_hash, sign(key, key_id, event_hash), key_id)


def checkpoint_mac(key: bytes, key_id: str, through_id: int, head_hash: str) -> str:
    """The MAC of a checkpoint: it binds the id as well as the hash."""
    return sign(key, key_id, f"checkpoint:{through_id}:{head_hash}")


class Problem(StrEnum):
    """What is wrong at the first broken link."""

    MISSING = "missing"  # an event was removed (a gap in the ids, or the chain's start)
    CHANGED = "changed"  # the event's fields are not what was hashed
    REORDERED = "reordered"  # the event was hashed under another id
    BAD_MAC = "bad_mac"  # the hash was recomputed, or the key is not the one that signed
    UNKNOWN_KEY = "unknown_key"  # signed under a key id the key ring does not hold
    UNSIGNED = "unsigned"  # no hash or MAC: written outside the chain
    LINK = "link"  # its prev_hash is not the hash of the event before it
    CHECKPOINT = "checkpoint"  # the checkpoint itself is not signed by our key


@dataclass(frozen=True)
class BrokenLink:
    """The first place the chain does not hold, and what is wrong there."""

    id: int
    problem: Problem
    message: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of a walk over the chain."""

    checked: int
    head_id: int | None
    head_hash: str | None
    broken: BrokenLink | None
    checkpoint: Checkpoint | None

    @property
    def intact(self) -> bool:
        return self.broken is None


class ChainWalker:
    """Walks events in id order and stops at the first broken link.

    Fed one event at a time, so a long chain is verified in pages without holding it whole.
    """

    def __init__(self, keys: Mapping[str, bytes], checkpoint: Checkpoint | None) -> None:
        self._keys = keys
        self._checkpoint = checkpoint
        self._prev = checkpoint.hash if checkpoint else GENESIS
        # The writer numbers events from 1, one after another.
        self._next_id = checkpoint.through_id + 1 if checkpoint else 1
        self._checked = 0
        self._head: StoredEvent | None = None
        self.broken: BrokenLink | None = None
        if checkpoint is not None:
            self.broken = self._check_checkpoint(checkpoint)

    def _check_checkpoint(self, cp: Checkpoint) -> BrokenLink | None:
        key = self._keys.get(cp.key_id)
        if key is None or not hmac.compare_digest(
            checkpoint_mac(key, cp.key_id, cp.through_id, cp.hash), cp.mac
        ):
            return BrokenLink(
                cp.through_id,
                Problem.CHECKPOINT,
                f"the checkpoint through event {cp.through_id} is not signed by a known key",
            )
        return None

    def feed(self, event: StoredEvent) -> bool:
        """Check the next event; False once the chain is broken (the rest need not be read)."""
        if self.broken is not None:
            return False
        self.broken = self._check(event)
        if self.broken is not None:
            return False
        self._checked += 1
        self._head = event
        assert event.hash is not None  # checked
        self._prev = event.hash
        self._next_id = event.content.id + 1
        return True

    def _check(self, event: StoredEvent) -> BrokenLink | None:
        eid = event.content.id
        if eid != self._next_id:
            if self._checkpoint is not None and eid <= self._checkpoint.through_id:
                return BrokenLink(
                    eid,
                    Problem.CHANGED,
                    f"event {eid} is older than the checkpoint (through event "
                    f"{self._checkpoint.through_id}): it was added after pruning",
                )
            missing = (
                f"event {self._next_id} is"
                if eid == self._next_id + 1
                else f"events {self._next_id} to {eid - 1} are"
            )
            return BrokenLink(self._next_id, Problem.MISSING, f"{missing} missing")
        if event.hash is None or event.mac is None or event.key_id is None:
            return BrokenLink(eid, Problem.UNSIGNED, f"event {eid} has no hash or MAC")
        if chain_hash(event.prev_hash or "", event.content) != event.hash:
            moved = self._hashed_as(event)
            if moved is not None:
                return BrokenLink(
                    eid,
                    Problem.REORDERED,
                    f"event {eid} was written as event {moved}: events were reordered",
                )
            return BrokenLink(eid, Problem.CHANGED, f"event {eid} was changed after it was written")
        key = self._keys.get(event.key_id)
        if key is None:
            return BrokenLink(
                eid,
                Problem.UNKNOWN_KEY,
                f"event {eid} is signed with key {event.key_id!r}, which the key ring lacks",
            )
        if not hmac.compare_digest(sign(key, event.key_id, event.hash), event.mac):
            return BrokenLink(
                eid,
                Problem.BAD_MAC,
                f"event {eid}'s MAC does not match its hash: it was rewritten without the key",
            )
        if event.prev_hash != self._prev:
            return BrokenLink(
                eid,
                Problem.LINK,
                f"event {eid} does not follow "
                + (f"event {eid - 1}" if eid > 1 else "the start of the chain")
                + ": one of them was replaced",
            )
        return None

    def _hashed_as(self, event: StoredEvent) -> int | None:
        """The id this event's content was hashed under, if one near its place fits."""
        eid = event.content.id
        for other in range(max(1, eid - REORDER_WINDOW), eid + REORDER_WINDOW + 1):
            if other != eid and chain_hash(
                event.prev_hash or "", event.content, event_id=other
            ) == (event.hash):
                return other
        return None

    def verdict(self) -> Verdict:
        head = self._head
        return Verdict(
            checked=self._checked,
            head_id=head.content.id if head else None,
            head_hash=head.hash if head else None,
            broken=self.broken,
            checkpoint=self._checkpoint,
        )


def verify(
    events: list[StoredEvent], keys: Mapping[str, bytes], checkpoint: Checkpoint | None = None
) -> Verdict:
    """Walk `events` (in id order) and name the first broken link, if any."""
    walker = ChainWalker(keys, checkpoint)
    for event in events:
        if not walker.feed(event):
            break
    return walker.verdict()
