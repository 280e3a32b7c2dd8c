"""What `r2c watch` prints off a terminal (one plain line per change, each measurement once)
and how it reads the event stream."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from cli.render import PauseClock, PlainRenderer, exit_code, live_view
from cli.watch import parse_events


# The router weighs slots; the status says which version each serves (the stable one first).
def _body(state: str, step: int, weights: dict[str, int], **status: Any) -> dict[str, Any]:
    return {
        "id": "d-1", "component": "demo", "environment": "dev", "version": "v2",
        "strategy": "canary", "state": state, "reason": status.pop("reason", None),
        "status": {"state": state, "step": step, "steps": 3, "phase": status.pop("phase", ""),
                   "weights": weights, "measurements": status.pop("measurements", []),
                   "previous_version": "v1", "version": "v2", "stable_slot": "blue",
                   "new_slot": "green", **status},
    }  # fmt: skip


M1 = {"metric": "error_rate", "index": 0, "value": 0.5, "phase": "failed",
      "at": "2026-11-29T14:00:00Z",
      "message": "0.5: success condition `result < 0.05` does not hold"}  # fmt: skip


def test_plain_lines_one_per_change() -> None:
    r = PlainRenderer()
    first = _body("progressing", 0, {"green": 20, "blue": 80}, phase="step 0: weight 20%")
    assert r.feed(first) == [
        "d-1 progressing | step 0/3 | step 0: weight 20% | weights v1=80% v2=20%"
    ]
    assert r.feed(first) == []  # the same state again: nothing
    measured = _body("progressing", 1, {"green": 20, "blue": 80}, phase="analysis step 1",
                     measurements=[M1])  # fmt: skip
    assert r.feed(measured) == [
        "  measurement error_rate[0] = 0.5: failed (0.5: success condition `result < 0.05` does"
        " not hold)",
        "d-1 progressing | step 1/3 | analysis step 1 | weights v1=80% v2=20%",
    ]
    done = _body(
        "rolled_back", 1, {"blue": 100, "green": 0}, reason="analysis failed", measurements=[M1]
    )
    assert r.feed(done) == [
        "d-1 rolled_back | step 1/3 | weights v1=100% v2=0% | - analysis failed"
    ]
    assert [exit_code(s) for s in ("succeeded", "rolled_back", "aborted", "failed")] == [0, 3, 4, 5]


def test_the_live_view_marks_the_current_step_and_counts_down() -> None:
    steps = [{"set_weight": 20}, {"pause": {"duration": "30s"}}, {"set_weight": 100}]
    body = _body("progressing", 2, {"green": 20, "blue": 80}, phase="pause 30s")
    console = Console(width=100, record=True, color_system=None)
    console.print(live_view(body, steps, PauseClock()))
    text = " ".join(console.export_text().split())
    assert "✓ 1 set weight 20% ▶ 2 pause 30s 3 set weight 100%" in text
    assert "pause: 30s left" in text or "pause: 29s left" in text
    assert "v1=80% v2=20%" in text
    ended = _body("succeeded", 3, {"green": 100, "blue": 0})
    console = Console(width=100, record=True, color_system=None)
    console.print(live_view(ended, steps, PauseClock()))
    assert "outcome: succeeded" in console.export_text()


def test_event_stream_parsing() -> None:
    lines = [": ping", "event: status", "id: 1", 'data: {"a":', "data: 1}", "",
             "", ": ping", "event: end", "id: 2", "data: {}", ""]  # fmt: skip
    assert list(parse_events(iter(lines))) == [
        ("status", "1", '{"a":\n1}'), ("end", "2", "{}")
    ]  # fmt: skip
