"""Did the canary's tail grow? A one-sided exact test at a pooled high quantile.

Mann-Whitney compares whole distributions by rank: a canary whose median holds while its
slowest 10% got three times slower moves few ranks and passes (kayenta#780). So latency is
also judged at a high quantile q (p95 by default): both samples are pooled, the pooled
q-quantile is the threshold, and the samples beyond it are counted per side. If both came from
one distribution, every split of the pooled samples is equally likely, so the canary's count
beyond the threshold is hypergeometric given the pooled total: Fisher's exact test on that
2x2 table is exact, with no distributional assumption (Mood's median test, moved to the tail).
A baseline-only threshold would not be: its own estimation noise would inflate false alarms.

The check fails only when the excess is significant AND the canary's own q-quantile is beyond
the tolerance relative to the baseline's, so a statistically real but tolerated change passes.
For `decrease`, the low tail (1 - q) is checked the same way, mirrored.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.stats import fisher_exact

from core.judge.result import TailCheck

Side = Literal["high", "low"]


def tail_check(
    canary: NDArray[np.float64],
    baseline: NDArray[np.float64],
    quantile: float,
    side: Side,
    alpha: float,
    tolerance: float,
) -> TailCheck:
    """Test whether the canary has more samples beyond the pooled quantile than chance allows."""
    q = quantile if side == "high" else 1 - quantile
    threshold = float(np.quantile(np.concatenate([canary, baseline]), q))
    if side == "high":
        canary_beyond = int((canary > threshold).sum())
        baseline_beyond = int((baseline > threshold).sum())
    else:
        canary_beyond = int((canary < threshold).sum())
        baseline_beyond = int((baseline < threshold).sum())
    table = np.array(
        [
            [canary_beyond, canary.size - canary_beyond],
            [baseline_beyond, baseline.size - baseline_beyond],
        ],
        dtype=np.int64,
    )
    p_value = float(fisher_exact(table, alternative="greater").pvalue)
    baseline_value = float(np.quantile(baseline, q))
    canary_value = float(np.quantile(canary, q))
    relative = canary_value / baseline_value - 1 if baseline_value != 0 else None
    if side == "high":
        beyond = (
            relative is None and canary_value > 0 or relative is not None and relative > tolerance
        )
    else:
        beyond = relative is not None and relative < -tolerance
    return TailCheck(
        quantile=q,
        baseline_value=baseline_value,
        canary_value=canary_value,
        relative=relative,
        threshold=threshold,
        baseline_beyond=baseline_beyond,
        canary_beyond=canary_beyond,
        p_value=p_value,
        failed=p_value < alpha and beyond,
    )
