"""The live-update hub: one poller per target whatever the number of watchers, slow watchers
skip to the newest snapshot, resume by Last-Event-ID, bounds, and no task left behind."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import pytest

from api.live import sse
from api.live.hub import LiveHub
from api.live.poller import MAILBOX, Snapshot, Watcher
from core.errors import DependencyUnavailableError, NotFoundError, RateLimitedError
from tests.support import wait_for

KEY = ("deployment", "dep-1")
TICK = 0.01


class Target:
    """A deployment whose state the test moves; counts the reads of it."""

    def __init__(self) -> None:
        self.step, self.state, self.reads, self.fail = 0, "progressing", 0, False

    async def fetch(self) -> tuple[str, bool]:
        self.reads += 1
        if self.fail:
            raise OSError("the store is down")
        if self.state == "gone":
            raise NotFoundError("no deployment")
        final = self.state in ("succeeded", "failed")
        return json.dumps({"step": self.step, "state": self.state}), final


def hub(**bounds: int) -> LiveHub:
    return LiveHub(
        interval=TICK, per_target=bounds.get("per_target", 100), total=bounds.get("total", 1000)
    )


async def next_of(watcher: Watcher) -> Snapshot | None:
    return await asyncio.wait_for(watcher.next(), 5)


async def test_every_watcher_gets_each_change_in_order_from_one_poller() -> None:
    live, target = hub(), Target()
    async with live.watch(KEY, target.fetch) as first:
        got = await next_of(first)
        assert got is not None and json.loads(got.body)["step"] == 0 and not got.final
        async with live.watch(KEY, target.fetch) as second:
            # A latecomer gets the current snapshot at once, with the same id.
            assert await next_of(second) == got
            assert len(live.pollers) == 1
            target.step = 1
            changed = await next_of(first)
            assert changed is not None and changed.id > got.id
            assert await next_of(second) == changed
            target.state, target.step = "succeeded", 2
            for watcher in (first, second):
                end = await next_of(watcher)
                assert end is not None and end.final and end.id > changed.id
                assert await next_of(watcher) is None  # the stream ends
    await wait_for(lambda: _true(not live.pollers), what="the poller to be gone")


async def test_a_hundred_watchers_cost_the_reads_of_one() -> None:
    live, alone, crowd = hub(), Target(), Target()
    async with live.watch(("deployment", "alone"), alone.fetch):
        async with AsyncExitStack() as stack:
            for _ in range(100):
                await stack.enter_async_context(live.watch(("deployment", "crowd"), crowd.fetch))
            await asyncio.sleep(20 * TICK)  # both read at their own interval meanwhile
    # The two pollers ran for the same time: the crowd's read about as often as the one's.
    assert crowd.reads <= alone.reads * 1.5 + 2, (crowd.reads, alone.reads)


async def test_a_slow_watcher_gets_the_newest_snapshot_never_a_backlog() -> None:
    live, target = hub(), Target()
    async with live.watch(KEY, target.fetch) as slow, live.watch(KEY, target.fetch) as keen:
        for step in range(1, 20):
            target.step = step
            await wait_for(lambda step=step: _step_seen(keen, step), what=f"step {step}")
        ids = []
        while slow._queue:
            snapshot = await next_of(slow)
            assert snapshot is not None
            ids.append(snapshot.id)
        assert len(ids) <= MAILBOX and ids == sorted(ids)
        assert live.pollers[KEY].latest is not None and ids[-1] == live.pollers[KEY].latest.id


async def test_resume_sends_the_current_snapshot_unless_the_client_has_it() -> None:
    live, target = hub(), Target()
    async with live.watch(KEY, target.fetch) as first:
        current = await next_of(first)
        assert current is not None
        async with (
            live.watch(KEY, target.fetch, resume_id=current.id - 1) as behind,
            live.watch(KEY, target.fetch, resume_id=current.id) as level,
        ):
            assert await next_of(behind) == current
            assert not level._queue  # nothing until the next change
            target.step = 1
            changed = await next_of(level)
            assert changed is not None and changed.id > current.id


async def test_the_last_watcher_stops_the_poller_and_a_return_keeps_the_id() -> None:
    live, target = hub(), Target()
    async with live.watch(KEY, target.fetch) as watcher:
        before = await next_of(watcher)
        poller = live.pollers[KEY]
    assert poller.task.done() and not live.pollers
    reads = target.reads
    await asyncio.sleep(5 * TICK)
    assert target.reads == reads  # nobody watches: nothing is read
    # Unchanged since: the same id, so a client resuming with it is not sent it again.
    assert before is not None
    async with live.watch(KEY, target.fetch, resume_id=before.id) as back:
        target.step = 1
        changed = await next_of(back)
        assert changed is not None and changed.id > before.id


async def test_bounds_per_target_and_per_process() -> None:
    live, target = hub(per_target=2, total=3), Target()
    async with live.watch(KEY, target.fetch), live.watch(KEY, target.fetch):
        with pytest.raises(RateLimitedError):
            live.admit(KEY)
        live.admit(("deployment", "other"))
        async with live.watch(("deployment", "other"), target.fetch):
            with pytest.raises(DependencyUnavailableError):
                live.admit(("deployment", "third"))
    live.admit(KEY)


async def test_failed_reads_are_retried_and_a_vanished_target_ends_the_stream() -> None:
    live, target = hub(), Target()
    target.fail = True
    async with live.watch(KEY, target.fetch) as watcher:
        await wait_for(lambda: _true(target.reads >= 3), what="retries")
        assert not watcher._queue
        target.fail = False
        assert await next_of(watcher) is not None
        target.state = "gone"
        assert await next_of(watcher) is None


async def test_close_stops_every_poller() -> None:
    live, target = hub(), Target()
    async with live.watch(KEY, target.fetch) as watcher:
        await next_of(watcher)
        poller = live.pollers[KEY]
        await live.close()
        assert poller.task.done() and not live.pollers
        assert await next_of(watcher) is None


async def test_a_stream_ends_at_its_final_snapshot_or_its_time_limit() -> None:
    live, target = hub(), Target()
    stream = live.snapshots(KEY, target.fetch, max_seconds=20 * TICK)
    assert (await anext(stream)).final is False
    with pytest.raises(StopAsyncIteration):  # nothing changed within the limit
        await asyncio.wait_for(anext(stream), 5)
    assert not live.pollers
    target.state = "succeeded"
    ended = [s async for s in live.snapshots(KEY, target.fetch, max_seconds=5)]
    assert [s.final for s in ended] == [True]


def test_events_on_the_wire() -> None:
    body = json.dumps({"state": "paused"})
    assert sse.event_of(Snapshot(7, body, False)).encode() == (
        f"id: 7\nevent: status\ndata: {body}\n\n".encode()
    )
    assert sse.event_of(Snapshot(8, body, True)).encode().startswith(b"id: 8\nevent: end\n")
    assert sse.ping().encode() == b": ping\n\n"
    assert sse.last_event_id("1764424800123") == 1764424800123
    for junk in (None, "", "-1", "abc", "1" * 40, "1.5"):
        assert sse.last_event_id(junk) is None


async def _true(value: bool) -> bool:
    return value


async def _step_seen(watcher: Watcher, step: int) -> bool:
    latest = watcher._queue[-1] if watcher._queue else None
    while watcher._queue:
        watcher._queue.popleft()
    if latest is not None and json.loads(latest.body)["step"] == step:
        return True
    return False
