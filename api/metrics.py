"""The API's Prometheus metrics, served on `METRICS_PORT` apart from the API itself."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "r2c_http_requests_total",
    "HTTP requests answered, by route template, method and status code",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "r2c_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WORKFLOW_STARTS = Counter(
    "r2c_workflow_starts_total",
    "Workflow start requests, by workflow type and outcome (created or existing)",
    ["type", "outcome"],
)
