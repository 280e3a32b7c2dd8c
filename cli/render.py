"""How a deployment is shown: plain lines (one per change, for logs and pipes) and the live
`rich` view of `r2c watch` on a terminal. Both take the body GET /api/v1/deployments/{id}
answers (the SSE stream sends the same body)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cli.judgement import heading, judgement_lines, newest_judgements

FINAL = ("succeeded", "rolled_back", "aborted", "failed")
EXIT_CODES = {"succeeded": 0, "rolled_back": 3, "aborted": 4, "failed": 5}
BAR_WIDTH = 40


def exit_code(state: str) -> int:
    return EXIT_CODES.get(state, 1)


def _status(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status")
    return status if isinstance(status, dict) else {}


def version_weights(st: dict[str, Any]) -> dict[str, int]:
    """The weights by version, the previous version first. The router weighs two slots
    (blue, green): while it runs the new version is in `new_slot`; once it has succeeded the
    new version's slot is the `stable_slot`."""
    new, old = st.get("version"), st.get("previous_version")
    slot_of_new = st.get("new_slot")
    done = st.get("state") == "succeeded" or (st.get("steps") and st.get("step") == st["steps"])
    if slot_of_new is None and done:  # past the last step, the new version's slot is stable
        slot_of_new = st.get("stable_slot")
    weights: dict[str, int] = {}
    items = sorted((st.get("weights") or {}).items(), key=lambda kv: kv[0] == slot_of_new)
    for slot, weight in items:
        if slot_of_new is None or not new or not old:
            label = slot
        else:
            label = new if slot == slot_of_new else old
        weights[str(label)] = int(weight)
    return weights


def weights_text(weights: dict[str, int]) -> str:
    return " ".join(f"{version}={weight}%" for version, weight in weights.items())


def measurement_key(m: dict[str, Any]) -> tuple[str, int, str]:
    return (str(m.get("metric")), int(m.get("index", 0)), str(m.get("at")))


def measurement_line(m: dict[str, Any]) -> str:
    value = m.get("value")
    shown = "no value" if value is None else f"{value:g}"
    return f"  measurement {m.get('metric')}[{m.get('index')}] = {shown}: {m.get('phase')}" + (
        f" ({m['message']})" if m.get("message") else ""
    )


def summary_line(body: dict[str, Any]) -> str:
    """One line for the deployment as it stands: state, step, phase, weights, why."""
    st = _status(body)
    state = str(st.get("state") or body.get("state"))
    parts = [f"{body.get('id')} {state}"]
    if st.get("steps"):
        parts.append(f"step {st.get('step')}/{st.get('steps')}")
    if st.get("phase"):
        parts.append(str(st["phase"]))
    if st.get("weights"):
        parts.append(f"weights {weights_text(version_weights(st))}")
    reason = st.get("paused_reason") if state == "paused" else None
    reason = reason or (body.get("reason") if state in FINAL else None)
    if reason:
        parts.append(f"- {reason}")
    return " | ".join(parts)


@dataclass
class PlainRenderer:
    """Lines for what changed since the last body: the summary when it differs, and each
    new measurement once."""

    last: str | None = None
    seen: set[tuple[str, int, str]] = field(default_factory=set)

    def feed(self, body: dict[str, Any]) -> list[str]:
        lines: list[str] = []
        for m in _status(body).get("measurements") or []:
            key = measurement_key(m)
            if key not in self.seen:
                self.seen.add(key)
                if m.get("judgement") and m.get("phase") != "no_data":
                    lines += [heading(m), *judgement_lines(m)]  # the table says it all
                else:
                    lines.append(measurement_line(m))
        line = summary_line(body)
        if line != self.last:
            self.last = line
            lines.append(line)
        return lines


def describe_step(step: dict[str, Any]) -> str:
    if "set_weight" in step:
        return f"set weight {step['set_weight']}%"
    if "pause" in step:
        duration = (step["pause"] or {}).get("duration")
        return f"pause {duration}" if duration is not None else "pause until promoted"
    if "analysis" in step:
        names = [m.get("name", "?") for m in step["analysis"].get("metrics", [])]
        return "analysis " + ", ".join(names)
    if "approval" in step:
        spec = step["approval"] or {}
        roles = "/".join(spec.get("roles") or ["operator"])
        return f"approval by {spec.get('approvers', 1)} {roles}"
    return str(step)


def _bar(weights: dict[str, int], stable: str | None) -> Text:
    text = Text()
    styles = ["green", "cyan", "magenta", "yellow"]
    used = 0
    items = list(weights.items())
    for i, (version, weight) in enumerate(items):
        cells = round(BAR_WIDTH * weight / 100) if i < len(items) - 1 else BAR_WIDTH - used
        cells = max(0, cells)
        used += cells
        style = "blue" if version == stable else styles[i % len(styles)]
        text.append("█" * cells, style=style)
    text.append("  " + weights_text(weights))
    return text


@dataclass
class PauseClock:
    """When the current timed pause was first seen, to count down from it."""

    key: tuple[int, str] | None = None
    since: float = 0.0

    def remaining(self, st: dict[str, Any]) -> float | None:
        phase = str(st.get("phase") or "")
        if not phase.startswith("pause ") or not phase.endswith("s"):
            self.key = None
            return None
        try:
            seconds = float(phase[len("pause ") : -1])
        except ValueError:
            return None
        key = (int(st.get("step") or 0), phase)
        if key != self.key:
            self.key, self.since = key, time.monotonic()
        return max(0.0, seconds - (time.monotonic() - self.since))


def live_view(
    body: dict[str, Any], steps: list[dict[str, Any]] | None, clock: PauseClock
) -> RenderableType:
    """The watch view: header, steps with the current one marked, weights, measurements,
    approvals, a pause countdown and the outcome."""
    st = _status(body)
    state = str(st.get("state") or body.get("state"))
    color = {"succeeded": "green", "rolled_back": "yellow", "aborted": "red", "failed": "red"}
    head = Text(f"{body.get('component')} {body.get('version')} → {body.get('environment')}  ")
    head.append(state.upper(), style=f"bold {color.get(state, 'cyan')}")
    head.append(f"  ({body.get('strategy')}, {body.get('id')})")
    parts: list[RenderableType] = [head]
    current = int(st.get("step") or 0)
    if steps:
        table = Table(show_header=False, box=None, padding=(0, 1))
        for i, step in enumerate(steps, 1):  # the workflow counts steps from 1
            done = i < current or state == "succeeded"
            mark = "▶" if i == current and state not in FINAL else ("✓" if done else " ")
            table.add_row(mark, f"{i}", describe_step(step), style="bold" if mark == "▶" else "")
        parts.append(table)
    elif st.get("steps"):
        parts.append(Text(f"step {current}/{st.get('steps')}"))
    if st.get("phase"):
        parts.append(Text(f"phase: {st['phase']}"))
    if st.get("weights"):
        parts.append(_bar(version_weights(st), st.get("previous_version")))
    left = clock.remaining(st)
    if left is not None and state not in FINAL:
        parts.append(Text(f"pause: {left:.0f}s left", style="yellow"))
    if state == "paused" and st.get("paused_reason"):
        parts.append(Text(f"⏸ {st['paused_reason']}", style="bold yellow"))
    measurements = st.get("measurements") or []
    if measurements:
        table = Table("metric", "#", "value", "verdict", "reason", box=None)
        for m in measurements[-8:]:
            value = m.get("value")
            verdict = str(m.get("phase"))
            style = {"successful": "green", "failed": "red"}.get(verdict, "yellow")
            table.add_row(
                str(m.get("metric")),
                str(m.get("index")),
                "-" if value is None else f"{value:g}",
                Text(verdict, style=style),
                str(m.get("message") or ""),
            )
        parts.append(table)
        judged = sorted(newest_judgements(measurements))
        if judged:  # the newest judgement in full, as `r2c describe deployment` shows it
            newest = measurements[judged[-1]]
            parts.append(Text("\n".join([heading(newest), *judgement_lines(newest)])))
    for result in (st.get("analyses") or [])[-2:]:
        verdict = str(result.get("phase"))
        style = {"successful": "green", "failed": "red"}.get(verdict, "yellow")
        parts.append(Text(f"analysis {verdict}: {result.get('reason')}", style=style))
    for a in st.get("approvals") or []:
        parts.append(Text(f"approved step {a.get('step')} by {a.get('by')}", style="green"))
    if state in FINAL:
        outcome = f"outcome: {state}" + (f" - {body.get('reason')}" if body.get("reason") else "")
        parts.append(Text(outcome, style=f"bold {color.get(state, 'white')}"))
    return Group(*parts)
