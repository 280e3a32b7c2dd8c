"""Numbers in words: how a judgement reads in a status, a log line or the CLI."""

from __future__ import annotations

from core.judge.config import MetricKind


def count(n: int) -> str:
    return f"{n:,}"


def p_value(p: float) -> str:
    return "p<0.0001" if p < 0.0001 else f"p={p:.2g}"


def value(kind: MetricKind, v: float) -> str:
    """A latency in ms (or s from one second); any other value with 4 significant digits."""
    if kind == "latency":
        if abs(v) >= 1:
            return f"{v:.3g} s"
        return f"{v * 1000:.3g} ms"
    return f"{v:.4g}"


def percent(share: float) -> str:
    """A share of 1 as a percentage: 0.3125 -> '31%', 0.012 -> '1.2%'."""
    pct = share * 100
    return f"{pct:.2g}%" if abs(pct) < 10 else f"{pct:.0f}%"


def relation(relative: float | None, shift: float) -> str:
    """'31% above', '4% below', 'the same as', or 'above' when there is no ratio."""
    if relative is None:
        return "above" if shift > 0 else "below" if shift < 0 else "the same as"
    if round(relative * 100, 1) == 0:
        return "the same as"
    return f"{percent(abs(relative))} {'above' if relative > 0 else 'below'}"


def units(kind: MetricKind) -> str:
    return "requests" if kind != "series" else "samples"


def rate(r: float) -> str:
    return f"{r * 100:.2f}%"
