"""The Hodges–Lehmann shift between two samples, and its confidence interval.

The estimate is the median of all canary-minus-baseline differences; the interval's ends are
order statistics of those differences at the ranks the Mann-Whitney U distribution gives
(normal approximation). 10,000 samples per side make 10^8 differences, too many to hold, so
beyond a million pairs the k-th difference is found by bisection on its value, counting the
pairs below a candidate with a binary search per canary sample: O((n + m) log m) per step,
exact to the last bits of a double, and no random subsampling (the judge stays deterministic).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from core.judge.result import Shift

# Up to this many pairs the differences are formed outright (8 MB of doubles).
DIRECT_PAIRS = 1_000_000
_BISECTION_STEPS = 200

Floats = NDArray[np.float64]


def _count_at_most(canary: Floats, baseline: Floats, d: float) -> int:
    """Pairs whose difference canary_i - baseline_j is at most d (both sorted)."""
    below = np.searchsorted(baseline, canary - d, side="left")
    return int(baseline.size * canary.size - below.sum())


def kth_difference(canary: Floats, baseline: Floats, k: int) -> float:
    """The k-th smallest (1-based) of the differences canary_i - baseline_j; sorted inputs."""
    pairs = canary.size * baseline.size
    k = min(max(k, 1), pairs)
    if pairs <= DIRECT_PAIRS:
        diffs = np.subtract.outer(canary, baseline).ravel()
        return float(np.partition(diffs, k - 1)[k - 1])
    lo = float(canary[0] - baseline[-1])  # the smallest difference: count >= 1
    hi = float(canary[-1] - baseline[0])  # the largest: count == pairs
    if _count_at_most(canary, baseline, lo) >= k:
        return lo
    # Invariant: count(lo) < k <= count(hi); stop when no double lies between them.
    for _ in range(_BISECTION_STEPS):
        mid = lo + (hi - lo) / 2
        if mid <= lo or mid >= hi:
            break
        if _count_at_most(canary, baseline, mid) >= k:
            hi = mid
        else:
            lo = mid
    return hi


def hodges_lehmann(canary: Floats, baseline: Floats, confidence: float) -> Shift:
    """The shift of the canary against the baseline, with a two-sided interval."""
    c = np.sort(canary)
    b = np.sort(baseline)
    n, m = c.size, b.size
    pairs = n * m
    middle = (pairs + 1) // 2
    estimate = kth_difference(c, b, middle)
    if pairs % 2 == 0:
        estimate = (estimate + kth_difference(c, b, middle + 1)) / 2
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    rank = math.floor(pairs / 2 - z * math.sqrt(pairs * (n + m + 1) / 12))
    if rank < 1:  # too few samples for an interval at this confidence: all differences
        low, high = float(c[0] - b[-1]), float(c[-1] - b[0])
    else:
        low = kth_difference(c, b, rank)
        high = kth_difference(c, b, pairs - rank + 1)
    baseline_median = float(np.median(b))
    relative = estimate / abs(baseline_median) if baseline_median != 0 else None
    return Shift(
        baseline_median=baseline_median,
        canary_median=float(np.median(c)),
        shift=estimate,
        relative=relative,
        low=low,
        high=high,
    )
