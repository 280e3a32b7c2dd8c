"""Error rate and latency per version over a deployment's time, from the router metrics that
Prometheus scrapes (PROMETHEUS_URL; `r2c_router_requests_total` and
`r2c_router_request_duration_seconds` by component, environment and version, see
docs/observability.md). Without Prometheus there is nothing to ask: the page then charts the
analysis' own measurements of the new version.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import httpx

from core.settings import Settings

MAX_POINTS = 120
MAX_VERSIONS = 10
MIN_STEP_SECONDS = 5
MIN_WINDOW_SECONDS = 30
TIMEOUT = 5.0
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # names are validated so on the way in


def queries(component: str, environment: str, window: int) -> dict[str, str]:
    """The PromQL of each series (names checked again: nothing else reaches a query)."""
    if not (_NAME.fullmatch(component) and _NAME.fullmatch(environment)):
        raise ValueError("component and environment must be names")
    target = f'component="{component}",environment="{environment}"'
    requests = f"sum by (version) (rate(r2c_router_requests_total{{{target}}}[{window}s]))"
    errors = (
        f'sum by (version) (rate(r2c_router_requests_total{{{target},code=~"5.."}}[{window}s]))'
    )
    buckets = f"rate(r2c_router_request_duration_seconds_bucket{{{target}}}[{window}s])"
    return {
        # A version with traffic and no 5xx has no error series: `or` gives it zeros.
        "error_rate": f"({errors} / {requests}) or ({requests} * 0)",
        "latency_ms": f"histogram_quantile(0.95, sum by (version, le) ({buckets})) * 1000",
    }


def steps(start: datetime, end: datetime) -> tuple[int, int]:
    """(step, rate window) in seconds: at most MAX_POINTS points over the time."""
    span = max((end - start).total_seconds(), 1.0)
    step = max(MIN_STEP_SECONDS, math.ceil(span / MAX_POINTS))
    return step, max(MIN_WINDOW_SECONDS, 2 * step)


async def per_version(
    settings: Settings, component: str, environment: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """`{"source", "versions": {version: {"error_rate": [[ms, v]], "latency_ms": [...]}},
    "error"}`; an unreachable Prometheus is an `error` here, never a failed page."""
    if not settings.prometheus_url:
        return {"source": None, "versions": {}, "error": None}
    step, window = steps(start, end)
    versions: dict[str, dict[str, list[list[float]]]] = {}
    url = settings.prometheus_url.rstrip("/") + "/api/v1/query_range"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
            for name, promql in queries(component, environment, window).items():
                resp = await http.get(
                    url,
                    params={
                        "query": promql,
                        "start": f"{start.timestamp():.3f}",
                        "end": f"{end.timestamp():.3f}",
                        "step": f"{step}s",
                    },
                )
                body = resp.json()
                if resp.status_code != 200 or body.get("status") != "success":
                    raise ValueError(str(body.get("error", resp.status_code))[:200])
                for series in body["data"]["result"][:MAX_VERSIONS]:
                    version = str(series["metric"].get("version", "?"))[:64]
                    points = [
                        [float(t) * 1000, float(v)]
                        for t, v in series["values"][: MAX_POINTS * 2]
                        if math.isfinite(float(v))
                    ]
                    versions.setdefault(version, {})[name] = points
    except httpx.HTTPError as err:  # its text may hold the URL, and the URL a password
        return {"source": "prometheus", "versions": {}, "error": type(err).__name__}
    except (ValueError, KeyError, TypeError) as err:
        return {"source": "prometheus", "versions": {}, "error": f"unreadable answer: {err}"}
    return {"source": "prometheus", "versions": versions, "error": None}
