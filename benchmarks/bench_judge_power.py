"""Benchmark: how often the judge catches a worse canary, and how often it cries wolf.

    python -m benchmarks.bench_judge_power [--runs 500] [--confidence 0.99] [--seed 0]

Simulates data shaped like the demo component's behind the router: latencies about 20 ms with
lognormal jitter (sigma 0.25: p50 20 ms, p95 30 ms), errors as Bernoulli draws. Each run judges
one window with the judgement a canary analysis would use: a latency metric and an errors
metric, both with the defaults (tolerance 10% and 0.1 percentage point, confidence as given).
The canary gets 10, 50 or 200 requests in the window; the baseline as many, or
`--baseline-factor` times as many (4: a canary at 20% of the traffic, the stable version
taking the rest). A cell is the share
of `--runs` seeded runs judged `fail`: detection power for a worse canary (latency +10/+20/+50%,
error rates 0.5/1/5% against a baseline with none), the false-positive rate for identical
versions. Prints a markdown table and the time per judgement.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from core.judge import (
    ErrorCounts,
    ErrorData,
    JudgeConfig,
    JudgeRequest,
    LatencyData,
)
from core.judge.judge import judge

SIZES = (10, 50, 200)
MEDIAN_S = 0.020
SIGMA = 0.25
# (row label, latency factor of the canary, error rate of the canary); the baseline has 1.0, 0.
CASES = (
    ("latency +10%", 1.10, 0.0),
    ("latency +20%", 1.20, 0.0),
    ("latency +50%", 1.50, 0.0),
    ("errors 0.5% (vs 0%)", 1.0, 0.005),
    ("errors 1% (vs 0%)", 1.0, 0.01),
    ("errors 5% (vs 0%)", 1.0, 0.05),
    ("identical (false positives)", 1.0, 0.0),
)


def one_run(
    config: JudgeConfig, n: int, base_n: int, factor: float, error_rate: float, seed: int
) -> str:
    rng = np.random.default_rng(seed)
    baseline = MEDIAN_S * rng.lognormal(0.0, SIGMA, base_n)
    canary = MEDIAN_S * factor * rng.lognormal(0.0, SIGMA, n)
    errors = int((rng.random(n) < error_rate).sum())
    request = JudgeRequest(
        config=config,
        data={
            "latency": LatencyData(baseline=baseline.tolist(), canary=canary.tolist()),
            "errors": ErrorData(
                baseline=ErrorCounts(requests=base_n, errors=0),
                canary=ErrorCounts(requests=n, errors=errors),
            ),
        },
        baseline_label="v1",
        canary_label="v2",
    )
    return judge(request).verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--confidence", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0, help="first seed; runs use seed..seed+runs")
    parser.add_argument(
        "--baseline-factor", type=int, default=1, help="baseline requests per canary request"
    )
    args = parser.parse_args()
    config = JudgeConfig.model_validate(
        {
            "metrics": [
                {"name": "latency", "kind": "latency", "confidence": args.confidence},
                {"name": "errors", "kind": "errors", "confidence": args.confidence},
            ]
        }
    )
    print(
        f"{args.runs} runs per cell, confidence {args.confidence}, baseline requests"
        f" {args.baseline_factor}x the canary's, share judged `fail`\n"
    )
    columns = " | ".join(f"{n} / {n * args.baseline_factor} requests" for n in SIZES)
    print(f"| canary vs baseline | {columns} |")
    print("|---|" + "---:|" * len(SIZES))
    judged = 0
    started = time.perf_counter()
    for label, factor, error_rate in CASES:
        cells = []
        for n in SIZES:
            fails = sum(
                one_run(config, n, n * args.baseline_factor, factor, error_rate, args.seed + run)
                == "fail"
                for run in range(args.runs)
            )
            judged += args.runs
            cells.append(f"{100 * fails / args.runs:.1f}%")
        print(f"| {label} | " + " | ".join(cells) + " |")
    elapsed = time.perf_counter() - started
    print(
        f"\n{judged} judgements in {elapsed:.1f} s: {1000 * elapsed / judged:.2f} ms each"
        " (validation of the input included)"
    )


if __name__ == "__main__":
    main()
