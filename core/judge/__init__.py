"""The statistical canary judge: is the new version worse than its baseline, on the same window?

`judge(JudgeRequest(config=..., data=...))` returns a `JudgeResult`. See docs/judge.md.
"""

from core.judge.config import JudgeConfig, JudgeMetric, Thresholds
from core.judge.data import (
    MAX_SAMPLES,
    ErrorCounts,
    ErrorData,
    JudgeRequest,
    LatencyData,
    SeriesData,
)
from core.judge.judge import judge
from core.judge.result import JudgeResult, MetricJudgement

__all__ = [
    "MAX_SAMPLES",
    "ErrorCounts",
    "ErrorData",
    "JudgeConfig",
    "JudgeMetric",
    "JudgeRequest",
    "JudgeResult",
    "LatencyData",
    "MetricJudgement",
    "SeriesData",
    "Thresholds",
    "judge",
]
