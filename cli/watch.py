"""Following a deployment to its end: the server-sent event stream
GET /api/v1/deployments/{id}/events (`event: status` on connect and on every change, `event:
end` with the final body, `: ping` comments), resumed with Last-Event-ID after a dropped
connection; an API without the stream (404), or one that serves as many streams as it will
(429, 503), is polled every 2 s instead."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from cli.api_client import ApiClient, ApiError, _refusal
from cli.render import FINAL

POLL_SECONDS = 2.0
# A stream pings every 15 s: nothing for this long means the connection is gone.
READ_TIMEOUT = 45.0
RECONNECTS = 20
MAX_EVENT_BYTES = 4_000_000


def parse_events(lines: Iterator[str]) -> Iterator[tuple[str, str | None, str]]:
    """(event, id, data) per event of a text/event-stream; comments are skipped."""
    event, event_id, size = "message", None, 0
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event, event_id, "\n".join(data)
            event, data, size = "message", [], 0
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "id":
            event_id = value
        elif name == "data":
            size += len(value)
            if size > MAX_EVENT_BYTES:
                raise ApiError(f"an event of the stream is over {MAX_EVENT_BYTES} bytes")
            data.append(value)


class StreamMissing(Exception):
    """The API has no event stream (404): poll instead."""


def _stream(client: ApiClient, path: str, last_id: list[str | None]) -> Iterator[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {client.key}", "Accept": "text/event-stream"}
    if last_id[0] is not None:
        headers["Last-Event-ID"] = last_id[0]
    timeout = httpx.Timeout(15.0, read=READ_TIMEOUT)
    with httpx.stream(
        "GET", f"{client.url}{path}", headers=headers, timeout=timeout, verify=client.verify
    ) as resp:
        if resp.status_code == 404 and last_id[0] is None:
            # No stream (an older API), or no such deployment: polling's GET tells which.
            raise StreamMissing
        if resp.status_code in (429, 503):
            # The API serves as many streams as it will (per target or in all): poll.
            raise StreamMissing
        if resp.status_code >= 400:
            resp.read()
            raise _refusal(resp)
        for event, event_id, data in parse_events(resp.iter_lines()):
            if event_id is not None:
                last_id[0] = event_id
            if event in ("status", "end"):
                body = json.loads(data)
                yield body
                if event == "end":
                    return


def follow(
    client: ApiClient,
    deployment_id: str,
    *,
    kind: str = "deployments",
    on_poll: Callable[[], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every new state of the deployment until it ends (the last one yielded is final)."""
    path = f"/api/v1/{kind}/{deployment_id}"
    last_id: list[str | None] = [None]
    failures = 0
    renewed = False
    while True:
        try:
            for body in _stream(client, path + "/events", last_id):
                failures, renewed = 0, False
                yield body
                if str(body.get("state")) in FINAL:
                    return
            # The stream closed without an end: ask once, resume if it still runs.
            body = client.request("GET", path)
            if str(body.get("state")) in FINAL:
                yield body
                return
        except StreamMissing:
            break
        except ApiError as err:
            # A person's token expired during a long watch: renewed once, then resumed.
            if err.status != 401 or renewed or not client.renew():
                raise
            renewed = True
        except (httpx.HTTPError, json.JSONDecodeError):
            failures += 1
            if failures > RECONNECTS:
                raise ApiError(
                    f"the event stream of {deployment_id} dropped {RECONNECTS} times"
                ) from None
            time.sleep(min(5.0, 0.5 * failures))
    if on_poll is not None:
        on_poll()
    while True:
        body = client.request("GET", path)
        yield body
        if str(body.get("state")) in FINAL:
            return
        time.sleep(POLL_SECONDS)
