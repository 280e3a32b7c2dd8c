"""A judge measurement as the CLI shows it (`r2c describe deployment`, `r2c watch`): per
judged metric its verdict, samples, test, p-value and effect size in a small table, each
metric's reason beneath, then the score, the verdict and what the rollout does.

Plain text that fits 100 columns, built from the API's JSON body (a `Measurement` with its
`judgement`, see core/judge/result.py), so a newer API with fields this CLI does not know, or
a body missing some, still renders: absent numbers show as `-`."""

from __future__ import annotations

import textwrap
from typing import Any

WIDTH = 100
INDENT = "    "
# What the measurement's phase says the rollout does (workflows/deployment/analysis.py maps
# each verdict through `on_verdict` to one of these phases).
ROLLOUT = {
    "successful": "continues",
    "inconclusive": "waits for approval",
    "failed": "rolls back",
    "no_data": "judges again (a metric has no data yet)",
    "error": "counts an error",
}
COLUMNS = ("metric", "verdict", "canary vs baseline", "test", "p-value", "effect")
# Cell widths at most: with the indent and the gaps between them, a row is 100 characters.
MAX_CELL = (16, 7, 17, 19, 7, 20)


def _percent(share: float) -> str:
    pct = share * 100
    return f"{pct:+.2g}%" if abs(pct) < 10 else f"{pct:+.0f}%"


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def effect(m: dict[str, Any]) -> str:
    """The effect size in few characters: the relative (Hodges–Lehmann) shift of latency and
    series and the growth of latency's tail quantile, `+30%, p95 +29%`; the error rate's
    difference in percentage points, `+0.50 pp`."""
    rates = m.get("rates") if isinstance(m.get("rates"), dict) else None
    if rates is not None and (diff := _num(rates.get("difference"))) is not None:
        return f"{diff * 100:+.2f} pp"
    shift = m.get("shift") if isinstance(m.get("shift"), dict) else None
    if shift is None:
        return "-"
    relative, absolute = _num(shift.get("relative")), _num(shift.get("shift"))
    if relative is not None:
        words = _percent(relative)
    elif absolute is None:
        words = "-"
    elif m.get("kind") == "latency":
        words = f"{absolute * 1000:+.3g} ms"
    else:
        words = f"{absolute:+.4g}"
    tail = m.get("tail") if isinstance(m.get("tail"), dict) else None
    if tail is not None and (grown := _num(tail.get("relative"))) is not None:
        quantile = _num(tail.get("quantile")) or 0.0
        words += f", p{quantile * 100:g} {_percent(grown)}"
    return words


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else "-"


def _p(m: dict[str, Any]) -> str:
    p = _num(m.get("p_value"))
    if p is None:
        return "-"
    return "<0.0001" if p < 0.0001 else f"{p:.2g}"


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _row(m: dict[str, Any]) -> list[str]:
    name = str(m.get("metric", "?")) + (" *" if m.get("critical") else "")
    samples = f"{_count(m.get('canary_samples'))} vs {_count(m.get('baseline_samples'))}"
    test = str(m.get("test") or "-").replace(" U + Fisher's exact on the tail", " + tail")
    cells = [name, str(m.get("verdict", "?")), samples, test, _p(m), effect(m)]
    return [_cell(c, w) for c, w in zip(cells, MAX_CELL, strict=True)]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    return [
        (INDENT + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
        for r in [list(COLUMNS), *rows]
    ]


def _wrapped(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    ) or [first.rstrip()]


def judgement_lines(measurement: dict[str, Any]) -> list[str]:
    """The judgement of one measurement as lines of at most 100 characters; none when the
    measurement is not a judge metric's."""
    result = measurement.get("judgement")
    if not isinstance(result, dict):
        return []
    metrics = [m for m in result.get("metrics") or [] if isinstance(m, dict)]
    lines = _table([_row(m) for m in metrics]) if metrics else []
    for m in metrics:
        lines += _wrapped(str(m.get("reason", "")), INDENT + "- ", INDENT + "  ")
    if any(m.get("critical") for m in metrics):
        lines.append(INDENT + "* critical: its failure fails the whole judgement")
    score = _num(result.get("score"))
    shown = "-" if score is None else f"{score:g}"
    action = ROLLOUT.get(str(measurement.get("phase")), str(measurement.get("phase")))
    verdict = f"score {shown} of 100, verdict {result.get('verdict', '?')}: the rollout {action}"
    lines += _wrapped(verdict, INDENT, INDENT + "  ")
    if result.get("reason"):
        lines += _wrapped(f"why: {result['reason']}", INDENT, INDENT + "  ")
    return lines


def heading(measurement: dict[str, Any]) -> str:
    """A judge measurement's own line (its message repeats what the table shows)."""
    m = measurement
    score = _num(m.get("value"))
    shown = "no score" if score is None else f"score {score:g}"
    at = str(m.get("at") or "")[:19].replace("T", " ")
    return _cell(f"  {m.get('metric')}[{m.get('index')}] {shown} {m.get('phase')} at {at}", WIDTH)


def newest_judgements(measurements: list[dict[str, Any]]) -> set[int]:
    """The positions of each metric's newest judged measurement (no-data ones left out): the
    ones shown in full; older ones stay one line each."""
    newest: dict[str, int] = {}
    for i, m in enumerate(measurements):
        if isinstance(m.get("judgement"), dict) and m.get("phase") != "no_data":
            newest[str(m.get("metric"))] = i
    return set(newest.values())


__all__ = ["effect", "heading", "judgement_lines", "newest_judgements"]
