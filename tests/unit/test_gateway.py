"""The Temporal gateway's error mapping and page tokens (no server needed)."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode

from api.gateway import Gateway, rpc_error
from core.errors import BadRequestError
from core.settings import Settings


@pytest.mark.parametrize(
    ("status", "message", "http_status", "error_type"),
    [
        (RPCStatusCode.INVALID_ARGUMENT, "invalid query", 400, "BadRequest"),
        (RPCStatusCode.INVALID_ARGUMENT, "Blob data size exceeds limit.", 413, "PayloadTooLarge"),
        (
            RPCStatusCode.RESOURCE_EXHAUSTED,
            "grpc: received message after decompression larger than max 4194304",
            413,
            "PayloadTooLarge",
        ),
        (RPCStatusCode.RESOURCE_EXHAUSTED, "namespace rate limit exceeded", 429, "RateLimited"),
        (RPCStatusCode.UNAVAILABLE, "connection refused", 503, "DependencyUnavailable"),
        (RPCStatusCode.DEADLINE_EXCEEDED, "deadline", 503, "DependencyUnavailable"),
        (RPCStatusCode.NOT_FOUND, "workflow not found", 404, "NotFound"),
        (RPCStatusCode.ALREADY_EXISTS, "already started", 409, "Conflict"),
        (RPCStatusCode.PERMISSION_DENIED, "no", 403, "PermissionDenied"),
        (RPCStatusCode.UNKNOWN, "something went wrong, please retry", 502, "UpstreamError"),
        (RPCStatusCode.INTERNAL, "boom", 502, "UpstreamError"),
    ],
)
def test_temporal_errors_map_to_http_statuses_never_500(
    status: RPCStatusCode, message: str, http_status: int, error_type: str
) -> None:
    mapped = rpc_error(RPCError(message, status, b""), "workflow x")
    assert (mapped.http_status, mapped.error_type) == (http_status, error_type)
    assert mapped.hint


def test_rate_limited_temporal_answers_carry_retry_after() -> None:
    mapped = rpc_error(RPCError("busy", RPCStatusCode.RESOURCE_EXHAUSTED, b""), "x")
    assert getattr(mapped, "retry_after", None) == 1


def _gateway(secret: str | None) -> Gateway:
    return Gateway(client=None, settings=Settings(page_token_secret=secret))  # type: ignore[arg-type]


def test_page_tokens_are_bound_to_the_api_and_the_filters() -> None:
    gateway = _gateway("shared")
    token = gateway._seal_token("WorkflowType = 'a'", b"raw-token")
    assert token is not None
    assert gateway._open_token("WorkflowType = 'a'", token) == b"raw-token"
    # Another replica with the same secret accepts it; one with another secret does not.
    assert _gateway("shared")._open_token("WorkflowType = 'a'", token) == b"raw-token"
    for gw, query, tok in (
        (_gateway("other"), "WorkflowType = 'a'", token),
        (gateway, "WorkflowType = 'b'", token),
        (gateway, "WorkflowType = 'a'", token[:-4]),
        (gateway, "WorkflowType = 'a'", "%%%"),
        (gateway, None, "é"),
    ):
        with pytest.raises(BadRequestError):
            gw._open_token(query, tok)
    assert gateway._seal_token(None, None) is None
