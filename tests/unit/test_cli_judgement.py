"""A judge measurement as a person reads it in `r2c describe deployment` and `r2c watch`: per
metric its verdict, samples, test, p-value, effect and reason, then the score, the verdict and
what the rollout does; plain text within 100 columns."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli import resources
from cli.main import app
from cli.render import PauseClock, PlainRenderer, live_view
from tests.judgements import slow_canary_judgement


def judgement() -> dict[str, Any]:
    """A real judgement, as the API answers it."""
    body = slow_canary_judgement().model_dump(mode="json")
    body["reason"] += "; baseline v1 in the same window"  # as the judging activity adds
    return body


def measurement(index: int, phase: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "metric": "judge",
        "index": index,
        "value": result["score"],
        "phase": phase,
        "at": f"2026-11-29T14:0{index}:00Z",
        "message": f"judge: {result['reason']}; the rollout ... at step 2, measurement {index}",
        "judgement": result,
    }


def deployment(measurements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "dep-7", "component": "demo", "environment": "staging", "version": "v2",
        "strategy": "canary", "state": "rolled_back", "initiator": "apikey:admin",
        "created_at": "2026-11-29T14:00:00Z", "reason": "analysis failed",
        "status": {"state": "rolled_back", "step": 2, "steps": 3, "phase": "analysis",
                   "previous_version": "v1", "measurements": measurements},
    }  # fmt: skip


def check_table(text: str) -> None:
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert "\x1b[" not in text  # no colour off a terminal
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("    ")}
    assert rows["metric"][:3] == ["metric", "verdict", "canary"]
    # latency: fails, 200 vs 800, rank test with the tail check, p<0.0001, ~+30% shift
    lat = rows["latency"]
    assert lat[1:6] == ["*", "fail", "200", "vs", "800"]
    assert "Mann-Whitney + tail" in " ".join(lat) and "<0.0001" in lat
    assert any(cell.startswith("+2") and cell.endswith("%,") for cell in lat)  # +29%,
    err = rows["errors"]
    assert err[1:5] == ["pass", "200", "vs", "800"]
    assert "Fisher's exact" in " ".join(err) and "0.2" in err and err[-2:] == ["+0.50", "pp"]
    words = " ".join(text.split())
    assert "- latency of v2 is 29% above v1's" in words
    assert "fails: shift and tail above the 10% tolerance" in words
    assert "- errors: v2 failed 0.50% of its requests" in words
    assert "score 0 of 100, verdict fail: the rollout rolls back" in words
    assert "why: fail at score 0 (critical metric latency fails); baseline v1" in words


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    bodies: dict[str, Any] = {}

    class Api:
        def request(self, method: str, path: str, body: Any = None) -> Any:
            return bodies[path]

    monkeypatch.setattr(resources, "client", lambda *a: Api())
    return bodies


def test_describe_shows_the_newest_judgement_as_a_table(canned: dict[str, Any]) -> None:
    result = judgement()
    earlier = {**result, "score": 100.0, "verdict": "pass", "reason": "pass at score 100"}
    canned["/api/v1/deployments/dep-7"] = deployment(
        [measurement(1, "successful", earlier), measurement(2, "failed", result)]
    )
    out = CliRunner().invoke(app, ["describe", "deployment", "dep-7"])
    assert out.exit_code == 0, out.output
    check_table(out.output)
    # The earlier judgement is one line (its message); the newest has the table.
    assert "  judge[1] 100 successful: judge: pass at score 100" in out.output
    assert "  judge[2] score 0 failed at 2026-11-29 14:02:00" in out.output
    assert out.output.count("canary vs baseline") == 1


def test_watch_prints_each_judgement_once_with_its_table() -> None:
    result = judgement()
    body = deployment([measurement(1, "failed", result)])
    r = PlainRenderer()
    check_table("\n".join(r.feed(body)))
    assert "canary vs baseline" not in "\n".join(r.feed(body))  # not again
    console = Console(width=100, record=True, color_system=None)
    console.print(live_view(body, None, PauseClock()))
    check_table(console.export_text())


def test_a_waiting_judgement_says_so_and_missing_numbers_show_as_dashes() -> None:
    result = {
        "score": 80.0,
        "verdict": "warning",
        "reason": "warning at score 80 (1 of 2 metrics fail)",
        "metrics": [
            {"metric": "queue_depth", "kind": "series", "verdict": "nodata", "critical": False,
             "weight": 1, "baseline_samples": 3, "canary_samples": 0, "reason": "no data"},
        ],
    }  # fmt: skip
    lines = PlainRenderer().feed(deployment([measurement(3, "inconclusive", result)]))
    text = "\n".join(lines)
    assert "    queue_depth  nodata   0 vs 3              -     -        -" in text
    assert "score 80 of 100, verdict warning: the rollout waits for approval" in text
    assert "* critical" not in text
