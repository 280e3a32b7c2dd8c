"""A small client of the Prometheus HTTP API: instant PromQL queries, one number back.

Only what analysis needs: fill the placeholders of a metric's query, ask
`GET /api/v1/query`, and turn the answer into a float (scalar or one series), a list of
floats (several series, in label order) or None (no series). Every failure, from a refused
connection to a PromQL parse error, is a `PrometheusError` carrying Prometheus's own words.
"""

from __future__ import annotations

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
