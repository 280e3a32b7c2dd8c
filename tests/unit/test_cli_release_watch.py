"""The release watch: plain lines per change (components first, the outcome last), the
live view's table, and the exit code of the final state (a rolled-back release is 3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from cli import release_watch
from cli.release_watch import ReleaseLines, release_view, watch_release


def _release(state: str, api: dict[str, Any], web: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "rel-0123456789ab", "environment": "staging", "state": state,
        "components": {"web": "v2", "api": "v2"},
        "reason": "api rolled back: error_rate failed" if state == "rolled_back" else None,
        "status": {"waves": [["api"], ["web"]],
                   "components": {"api": {"wave": 0, **api}, "web": {"wave": 1, **web}}},
    }  # fmt: skip


STEPS = [
    _release("progressing", {"state": "progressing", "deployment_id": "dep-a"}, {}),
    _release(
        "rolling_back",
        {"state": "rolled_back", "deployment_id": "dep-a", "reason": "error_rate failed"},
        {},
    ),  # fmt: skip
    _release(
        "rolled_back",
        {"state": "rolled_back", "deployment_id": "dep-a", "reason": "error_rate failed"},
        {},
    ),  # fmt: skip
]


class FakeApi:
    def request(self, method: str, path: str, body: Any = None) -> Any:
        assert (method, path) == ("GET", "/api/v1/deployments/dep-a")
        return {"status": {"weights": {"blue": 100}, "version": "v2", "previous_version": "v1",
                           "stable_slot": "blue", "new_slot": "green"}}  # fmt: skip


def test_a_rolled_back_release_in_plain_lines_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def follow(api: Any, release_id: str, *, kind: str) -> Iterator[dict[str, Any]]:
        assert (release_id, kind) == ("rel-0123456789ab", "releases")
        yield from STEPS

    monkeypatch.setattr(release_watch, "follow", follow)
    assert watch_release(FakeApi(), "rel-0123456789ab", tty=False) == 3  # type: ignore[arg-type]
    assert capsys.readouterr().out.splitlines() == [
        "  wave 1 api v2: progressing (dep-a) | weights v1=100%",
        "rel-0123456789ab progressing | staging | wave 1/2",
        "  wave 1 api v2: rolled_back (dep-a) | weights v1=100% - error_rate failed",
        "rel-0123456789ab rolling_back | staging | wave 1/2",
        "rel-0123456789ab rolled_back | staging | wave 1/2 | - api rolled back: error_rate failed",
    ]


def test_the_live_view_shows_waves_states_and_weights() -> None:
    console = Console(width=120, record=True)
    console.print(release_view(STEPS[0], {"dep-a": "v1=80% v2=20%"}))
    screen = console.export_text()
    assert "release rel-0123456789ab → staging  PROGRESSING  wave 1 of 2" in screen
    assert "api" in screen and "dep-a" in screen and "v1=80% v2=20%" in screen
    assert "waiting" in screen  # web, of the next wave
    console.print(release_view(STEPS[-1], {}))
    assert "outcome: rolled_back - api rolled back" in console.export_text()
    assert ReleaseLines().feed(STEPS[0], {})[-1].endswith("wave 1/2")
