"""Error metrics: Fisher's exact test on the 2x2 table of errors and successes per side.

A rank test sees error counts as two numbers and cannot judge them; a normal approximation of
two proportions breaks down for rare events, and against a baseline of zero errors a ratio is
undefined, which is how Kayenta misses sparse errors (kayenta#426). Fisher's exact test needs
no approximation: with the canary at 20% of the traffic, 1% errors (10 of 1,000 requests)
against 0 of 4,000 gives p < 0.0001. The test is one-sided in the bad direction. The tolerance
is absolute on the rate difference (0.001 = the canary may fail 0.1 percentage point more of
its requests), and both must hold: significant AND beyond the tolerance.

Fisher's test is conservative for small counts (it conditions on the total of errors);
Boschloo's test is more powerful but costs seconds at 10^5 requests, so Fisher it is.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import fisher_exact

from core.judge import wording
from core.judge.config import ALTERNATIVE, JudgeMetric
from core.judge.data import ErrorData
from core.judge.result import Deviation, MetricJudgement, Rates, judgement

TEST = "Fisher's exact"


def judge_errors(
    metric: JudgeMetric, data: ErrorData, baseline_label: str, canary_label: str
) -> MetricJudgement:
    """Judge one errors metric whose sides both have at least min_samples requests."""
    b, c = data.baseline, data.canary
    table = np.array(
        [[c.errors, c.requests - c.errors], [b.errors, b.requests - b.errors]], dtype=np.int64
    )
    p = float(fisher_exact(table, alternative=ALTERNATIVE[metric.direction]).pvalue)
    rates = Rates(
        baseline_rate=b.errors / b.requests,
        canary_rate=c.errors / c.requests,
        difference=c.errors / c.requests - b.errors / b.requests,
        baseline_errors=b.errors,
        canary_errors=c.errors,
    )
    deviation: Deviation | None = None
    if p < metric.alpha:
        if rates.difference > metric.allowed and metric.direction != "decrease":
            deviation = "high"
        elif rates.difference < -metric.allowed and metric.direction != "increase":
            deviation = "low"
    text = (
        f"{metric.name}: {canary_label} failed {wording.rate(rates.canary_rate)} of its requests,"
        f" {baseline_label} {wording.rate(rates.baseline_rate)}"
        f" ({wording.count(c.errors)} of {wording.count(c.requests)} vs"
        f" {wording.count(b.errors)} of {wording.count(b.requests)} requests);"
        f" Fisher's exact {wording.p_value(p)}"
    )
    tolerated = f"{metric.allowed * 100:.2g} percentage point tolerance"
    if deviation is None:
        reason = f"{text}; passes: no significant change beyond the {tolerated}"
    else:
        points = abs(rates.difference) * 100
        reason = (
            f"{text}; fails: {points:.2g} percentage points"
            f" {'more' if deviation == 'high' else 'fewer'}, beyond the {tolerated}"
        )
    return judgement(
        metric,
        "fail" if deviation else "pass",
        (b.requests, c.requests),
        reason,
        deviation=deviation,
        test=TEST,
        p_value=p,
        rates=rates,
    )
