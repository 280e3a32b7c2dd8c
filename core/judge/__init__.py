"""The statistical canary judge: is the new version worse than its baseline, on the same window?

`core.judge.judge.judge(JudgeRequest(config=..., data=...))` returns a `JudgeResult`. See
docs/judge.md. The package itself exports the models only: they are read by the API and the
workflows' models, which must not pay for importing scipy (the judge's tests need it).
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
]
