"""The events of a live stream, in the server-sent events format."""

from __future__ import annotations

from sse_starlette import ServerSentEvent

from api.live.poller import Snapshot

STATUS = "status"
END = "end"


def event_of(snapshot: Snapshot) -> ServerSentEvent:
    """`status` for a change, `end` for the final state (the server closes the stream after)."""
    return ServerSentEvent(
        data=snapshot.body, event=END if snapshot.final else STATUS, id=str(snapshot.id), sep="\n"
    )


def ping() -> ServerSentEvent:
    """A comment line: no event for the client, bytes on the wire for the proxies between."""
    return ServerSentEvent(comment="ping", sep="\n")


def last_event_id(header: str | None) -> int | None:
    """The client's `Last-Event-ID`, if it is one of ours (an integer); else None (start over:
    snapshots are complete, so a snapshot is all a client ever needs)."""
    if header is None or not header.isdigit() or len(header) > 19:
        return None
    return int(header)
