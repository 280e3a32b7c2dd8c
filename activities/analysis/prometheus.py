"""A small client of the Prometheus HTTP API: instant PromQL queries, one number back.

Only what analysis needs: fill the placeholders of a metric's query, ask
`GET /api/v1/query`, and turn the answer into a float (scalar or one series), a list of
floats (several series, in label order) or None (no series). Every failure, from a refused
connection to a PromQL parse error, is a `PrometheusError` carrying Prometheus's own words.

A judge's series metric asks a range instead (`query_range`, `GET /api/v1/query_range`):
one series' values over a window, NaN points dropped, bounded in points and bytes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import httpx

PLACEHOLDERS = ("version", "component", "environment")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Characters that could end a PromQL string literal or escape from it.
_UNSAFE = re.compile(r"[\"'`\\\x00-\x1f\x7f]")
QueryResult = float | list[float] | None


class PrometheusError(Exception):
    """Prometheus could not answer the query; the message says why, in its own words."""


class QueryTemplateError(ValueError):
    """The query's placeholders cannot be filled in safely."""


def render_query(template: str, **values: str) -> str:
    """Fill `{{version}}`, `{{component}}` and `{{environment}}` into a PromQL template.

    The values land inside PromQL string literals, so a quote or a backslash in one could
    change the query's meaning: such a value is refused rather than escaped.
    """
    for name, value in values.items():
        if name not in PLACEHOLDERS:
            raise QueryTemplateError(f"unknown placeholder value {name!r}")
        if _UNSAFE.search(value):
            raise QueryTemplateError(
                f"{name} {value!r} contains a quote, a backslash or a control character; "
                "it cannot be put into a PromQL query"
            )

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise QueryTemplateError(
                f"unknown placeholder {{{{{name}}}}} in the query; "
                f"known: {', '.join('{{' + p + '}}' for p in PLACEHOLDERS)}"
            )
        return values[name]

    return _PLACEHOLDER.sub(fill, template)


def _number(value: Any) -> float:
    """A sample's value: Prometheus sends `[timestamp, "1.5"]`, also "NaN" and "+Inf"."""
    try:
        return float(value[1])
    except (TypeError, ValueError, IndexError) as err:
        raise PrometheusError(f"unexpected sample in Prometheus's answer: {value!r}") from err


def _label_key(series: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((str(k), str(v)) for k, v in (series.get("metric") or {}).items())


def decode_result(data: dict[str, Any]) -> QueryResult:
    """The `data` of a successful answer as a float, a list of floats, or None."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result)
    if kind == "vector" and isinstance(result, list):
        values = [_number(s.get("value")) for s in sorted(result, key=_label_key)]
        if not values:
            return None
        return values[0] if len(values) == 1 else values
    if kind == "matrix":
        raise PrometheusError(
            "the query returns a range vector; analysis needs an instant value "
            "(wrap the range in a function such as rate() or avg_over_time())"
        )
    raise PrometheusError(f"the query returns a {kind}, not a number")


def _error_of(resp: httpx.Response) -> str | None:
    """Prometheus's error message in an answer, if it has one."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("status") == "error":
        return f"{body.get('errorType', 'error')}: {body.get('error', 'no message')}"
    return None


# --------------------------------------------------------------------------- range queries

# Prometheus itself refuses a range of more than 11,000 points per series; asking for more
# only earns its error, so it is refused here first with the way out.
MAX_RANGE_POINTS = 11_000
# One series of MAX_RANGE_POINTS points is about half a MiB of JSON; an answer much larger
# holds many series (which is an error anyway) and is not read to the end.
MAX_RANGE_BYTES = 4 * 1024 * 1024


def range_points(start: float, end: float, step: float) -> int:
    """How many points Prometheus evaluates for [start, end] every `step` seconds."""
    return math.floor((end - start) / step) + 1


def decode_range(data: dict[str, Any]) -> list[float]:
    """The `data` of a successful range answer as one series' values, in time order.

    No series is an empty list (no evidence). NaN points (0/0, e.g. a rate of nothing) are
    dropped; an infinity is an error, since no judge can compare it.
    """
    kind, result = data.get("resultType"), data.get("result")
    if kind != "matrix" or not isinstance(result, list):
        raise PrometheusError(f"a range query answered a {kind}, not a matrix")
    if not result:
        return []
    if len(result) > 1:
        raise PrometheusError(
            f"the query returns {len(result)} series; aggregate them into one "
            "(for example with sum() or max())"
        )
    series = result[0] if isinstance(result[0], dict) else {}
    points = series.get("values")
    if points is None and "histograms" in series:
        raise PrometheusError(
            "the query returns native histograms; ask for a number from them "
            "(for example with histogram_quantile())"
        )
    if not isinstance(points, list):
        raise PrometheusError(f"unexpected series in Prometheus's answer: {str(series)[:300]}")
    if len(points) > MAX_RANGE_POINTS:
        raise PrometheusError(
            f"Prometheus answered {len(points)} points, more than the {MAX_RANGE_POINTS} asked"
        )
    values: list[float] = []
    for point in points:
        value = _number(point)
        if math.isinf(value):
            raise PrometheusError(
                f"the query returns {value} at {point[0]}; a series metric needs finite"
                " values (guard divisions, e.g. `x / (y > 0)`)"
            )
        if not math.isnan(value):
            values.append(value)
    return values


async def _range_body(
    http: httpx.AsyncClient, url: str, params: dict[str, str], wait: float
) -> dict[str, Any]:
    """GET `url` and read at most MAX_RANGE_BYTES of its JSON answer."""
    try:
        async with http.stream("GET", url, params=params, timeout=wait) as resp:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > MAX_RANGE_BYTES:
                    raise PrometheusError(
                        f"Prometheus's answer is over {MAX_RANGE_BYTES // (1024 * 1024)} MiB;"
                        " a series metric needs one series: aggregate the query"
                        " (for example with sum() or max())"
                    )
                chunks.append(chunk)
    except httpx.TimeoutException as err:
        raise PrometheusError(f"no answer from Prometheus at {url} within {wait:g}s") from err
    except httpx.HTTPError as err:
        raise PrometheusError(
            f"cannot reach Prometheus at {url}: {type(err).__name__}: {err}"
        ) from err
    text = b"".join(chunks).decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status") == "error":
        message = f"{body.get('errorType', 'error')}: {body.get('error', 'no message')}"
        raise PrometheusError(f"Prometheus refused the query: {message}")
    if not resp.is_success:
        raise PrometheusError(f"HTTP {resp.status_code} from Prometheus: {text[:300]}")
    if not isinstance(body, dict):
        raise PrometheusError(f"Prometheus's answer is not JSON: {text[:300]}")
    data = body.get("data")
    return data if isinstance(data, dict) else {}


class PrometheusClient:
    """Instant queries against one Prometheus server."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, timeout: float = 10.0) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def query(self, promql: str) -> QueryResult:
        """Evaluate `promql` now; raise `PrometheusError` with Prometheus's message on failure."""
        url = f"{self.base_url}/api/v1/query"
        # Prometheus stops evaluating by itself a little before we would give up waiting.
        params = {"query": promql, "timeout": f"{max(self.timeout - 1.0, 1.0):g}s"}
        try:
            resp = await self.http.get(url, params=params, timeout=self.timeout)
        except httpx.TimeoutException as err:
            raise PrometheusError(
                f"no answer from Prometheus at {url} within {self.timeout:g}s"
            ) from err
        except httpx.HTTPError as err:
            raise PrometheusError(
                f"cannot reach Prometheus at {url}: {type(err).__name__}: {err}"
            ) from err
        message = _error_of(resp)
        if message is not None:
            raise PrometheusError(f"Prometheus refused the query: {message}")
        if not resp.is_success:
            raise PrometheusError(f"HTTP {resp.status_code} from Prometheus: {resp.text[:300]}")
        try:
            body = resp.json()
        except ValueError as err:
            raise PrometheusError(f"Prometheus's answer is not JSON: {resp.text[:300]}") from err
        return decode_result(body.get("data") or {})

    async def query_range(self, promql: str, start: float, end: float, step: float) -> list[float]:
        """Evaluate `promql` every `step` seconds over [start, end] (seconds since the epoch).

        The query must give one series (or none: an empty list); its NaN points are dropped,
        an infinity is an error. Every failure is a `PrometheusError` in words a user can act
        on, Prometheus's own when it refused the query.
        """
        if not all(math.isfinite(x) for x in (start, end, step)) or step <= 0 or end < start:
            raise ValueError(f"not a range: start {start}, end {end}, step {step}")
        points = range_points(start, end, step)
        if points > MAX_RANGE_POINTS:
            raise PrometheusError(
                f"a range of {points} points ({end - start:g}s every {step:g}s) is more than"
                f" Prometheus answers ({MAX_RANGE_POINTS} per series); ask a larger step"
            )
        params = {
            "query": promql,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:.3f}",
            "timeout": f"{max(self.timeout - 1.0, 1.0):g}s",
        }
        url = f"{self.base_url}/api/v1/query_range"
        return decode_range(await _range_body(self.http, url, params, self.timeout))
