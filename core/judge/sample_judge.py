"""Latency and series metrics: a one-sided Mann-Whitney U test with a Hodges–Lehmann shift.

A metric fails only when the shift is significant (p below 1 - confidence) AND beyond the
tolerance, so a large sample cannot fail a canary for a real but harmless 2%. Latency also
gets the tail check (core/judge/tail_check.py). The two tests of a latency metric share its
false-alarm budget (Bonferroni: each at half of 1 - confidence), so the metric's false-alarm
rate stays within what its confidence promises.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import mannwhitneyu

from core.judge import wording
from core.judge.config import ALTERNATIVE, Direction, JudgeMetric
from core.judge.data import LatencyData, SeriesData
from core.judge.hodges_lehmann import Floats, hodges_lehmann
from core.judge.result import Deviation, MetricJudgement, Shift, TailCheck, judgement
from core.judge.tail_check import Side, tail_check

TEST = "Mann-Whitney U"


def _beyond(metric: JudgeMetric, shift: Shift) -> Deviation | None:
    """Which way the shift passes the tolerance, in a direction the metric calls bad."""
    rel = shift.relative
    tol = metric.allowed
    high = rel > tol if rel is not None else shift.shift > 0
    low = rel < -tol if rel is not None else shift.shift < 0
    if high and metric.direction in ("increase", "either"):
        return "high"
    if low and metric.direction in ("decrease", "either"):
        return "low"
    return None


def _tails(metric: JudgeMetric, canary: Floats, baseline: Floats, alpha: float) -> list[TailCheck]:
    # `either` checks both tails, each with half the budget.
    sides: dict[Direction, list[tuple[Side, float]]] = {
        "increase": [("high", alpha)],
        "decrease": [("low", alpha)],
        "either": [("high", alpha / 2), ("low", alpha / 2)],
    }
    return [
        tail_check(canary, baseline, metric.quantile, side, a, metric.allowed)
        for side, a in sides[metric.direction]
    ]


def judge_samples(
    metric: JudgeMetric, data: LatencyData | SeriesData, baseline_label: str, canary_label: str
) -> MetricJudgement:
    """Judge one latency or series metric whose sides both have at least min_samples."""
    canary = np.asarray(data.canary, dtype=np.float64)
    baseline = np.asarray(data.baseline, dtype=np.float64)
    latency = metric.kind == "latency"
    alpha = metric.alpha / 2 if latency else metric.alpha
    test = mannwhitneyu(canary, baseline, alternative=ALTERNATIVE[metric.direction])
    p = float(test.pvalue)
    if not np.isfinite(p):  # every sample equal on both sides: no evidence of any shift
        p = 1.0
    shift = hodges_lehmann(canary, baseline, metric.confidence)
    moved = _beyond(metric, shift) if p < alpha else None
    deviation = moved
    tails = _tails(metric, canary, baseline, alpha) if latency else []
    failed_tail = next((t for t in tails if t.failed), None)
    if deviation is None and failed_tail is not None:
        deviation = "high" if failed_tail.quantile >= 0.5 else "low"
    shown_tail = failed_tail or (tails[0] if tails else None)
    sizes = (canary.size, baseline.size)
    failures = [w for w, f in (("shift", moved), ("tail", failed_tail)) if f is not None]
    labels = (canary_label, baseline_label)
    reason = _words(metric, shift, p, shown_tail, failures, deviation, sizes, labels)
    return judgement(
        metric,
        "fail" if deviation else "pass",
        (baseline.size, canary.size),
        reason,
        deviation=deviation,
        test=TEST + (" + Fisher's exact on the tail" if latency else ""),
        p_value=p,
        shift=shift,
        tail=shown_tail,
    )


def _words(
    metric: JudgeMetric,
    shift: Shift,
    p: float,
    tail: TailCheck | None,
    failures: list[str],
    deviation: Deviation | None,
    sizes: tuple[int, int],
    labels: tuple[str, str],
) -> str:
    kind = metric.kind
    canary_label, baseline_label = labels
    v = wording.value
    text = (
        f"{metric.name} of {canary_label} is {wording.relation(shift.relative, shift.shift)}"
        f" {baseline_label}'s (median {v(kind, shift.canary_median)} vs"
        f" {v(kind, shift.baseline_median)}, shift {v(kind, shift.shift)};"
        f" {wording.count(sizes[0])} vs {wording.count(sizes[1])} {wording.units(kind)});"
        f" Mann-Whitney {wording.p_value(p)}"
    )
    if tail is not None:
        label = f"p{tail.quantile * 100:g}"
        text += (
            f"; {label} {v(kind, tail.canary_value)} vs {v(kind, tail.baseline_value)}"
            f" ({wording.relation(tail.relative, tail.canary_value - tail.baseline_value)}),"
            f" {wording.count(tail.canary_beyond)} vs {wording.count(tail.baseline_beyond)}"
            f" beyond the pooled {label}, Fisher {wording.p_value(tail.p_value)}"
        )
    tolerance = f"{wording.percent(metric.allowed)} tolerance"
    if deviation is None:
        return f"{text}; passes: no significant change beyond the {tolerance}"
    what = " and ".join(failures)
    return f"{text}; fails: {what} {'above' if deviation == 'high' else 'below'} the {tolerance}"
