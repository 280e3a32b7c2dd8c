"""`r2c logs <component>/<environment>` on what the local provider really starts: the router's
and the instances' logs, each line prefixed by its source; a new weight table shows up in a
follower."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from activities.infrastructure.local.provider import LocalProvider
from cli.logs import Follower, collect, sources
from tests.integration.local_infra import demo_component, ensure


async def test_a_targets_logs_are_its_routers_and_its_instances(
    provider: LocalProvider, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    component = demo_component()
    state = await provider.ensure_instances(component, ensure("stable", "v1", 2))
    await provider.set_weights(component, "dev", {"stable": 100})
    found = sources(home, "demo/dev")
    instance_ids = sorted(i.instance_id for i in state.instances)
    assert [s.label for s in found] == ["router", *instance_ids]

    lines = collect(found, None, 200)
    router = [line.text for line in lines if line.label == "router"]
    assert any('"router listening"' in text for text in router), router
    assert any('"routing table applied"' in text for text in router), router

    follower = Follower(found, found[0].path.parent)
    await provider.set_weights(component, "dev", {"stable": 100})
    done = threading.Event()
    stream = follower.lines(stop=done.is_set, poll_seconds=0.05)
    try:
        # The router reloads its table within a second: the follower shows its line.
        label, text = await asyncio.wait_for(asyncio.to_thread(next, stream), 20)
    finally:
        done.set()  # a follower still waiting in its thread ends at its next poll
    assert label == "router" and "routing table applied" in text
