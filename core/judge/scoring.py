"""From metric verdicts to a score and a verdict, with Kayenta's rules.

The score is the weighted share of passing metrics among those judged (no data is left out,
unless a metric's `nodata` is `fail`); 0 when a critical metric fails, and 0 when at least
half the metrics that count have no data (`nodata: ignore` metrics are not counted). The
verdict follows from the score alone (pass at or above `thresholds.pass`, warning at or above
`thresholds.warning`, fail below), so it is monotone in the score.
"""

from __future__ import annotations

from core.judge.config import JudgeConfig, Thresholds
from core.judge.result import MetricJudgement, Verdict


def verdict_of(score: float, thresholds: Thresholds) -> Verdict:
    """pass / warning / fail by the two thresholds."""
    if score >= thresholds.pass_:
        return "pass"
    if score >= thresholds.warning:
        return "warning"
    return "fail"


def score(config: JudgeConfig, judged: list[MetricJudgement]) -> tuple[float, str]:
    """The score from 0 to 100, and why, in words."""
    policy = {m.name: m.nodata for m in config.metrics}
    counted = [j for j in judged if policy[j.metric] != "ignore" or j.verdict != "nodata"]
    nodata = [j for j in judged if j.verdict == "nodata" and policy[j.metric] != "ignore"]
    considered = [j for j in judged if policy[j.metric] != "ignore"]
    if considered and 2 * len(nodata) >= len(considered):
        names = ", ".join(j.metric for j in nodata)
        return 0.0, f"{len(nodata)} of {len(considered)} metrics have no data ({names})"
    failing = [
        j
        for j in counted
        if j.verdict == "fail" or (j.verdict == "nodata" and policy[j.metric] == "fail")
    ]
    critical = [j for j in failing if j.critical]
    if critical:
        return 0.0, f"critical metric {critical[0].metric} fails"
    scored = [j for j in counted if j.verdict != "nodata" or policy[j.metric] == "fail"]
    total = sum(j.weight for j in scored)
    if total == 0:
        return 0.0, "no metric could be judged"
    passing = sum(j.weight for j in scored if j.verdict == "pass")
    value = round(100 * passing / total, 2)
    if not failing:
        return value, f"all {len(scored)} judged metrics pass"
    names = ", ".join(j.metric for j in failing)
    return value, f"{len(failing)} of {len(scored)} judged metrics fail ({names})"
