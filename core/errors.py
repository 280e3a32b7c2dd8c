"""The one error vocabulary of the system.

Domain code raises these; the API maps them to HTTP in one exception handler and activities
turn them into `ApplicationError`s whose `type` is the class's `error_type`, so retry policies
can name them as non-retryable.
"""

from __future__ import annotations

from typing import Any


class R2CError(Exception):
    """Base of every error this system raises on purpose; `hint` says how to fix it."""

    error_type = "R2CError"
    http_status = 500

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details


class NotFoundError(R2CError):
    """The named thing does not exist."""

    error_type = "NotFound"
    http_status = 404


class ConflictError(R2CError):
    """The request clashes with the current state: a duplicate, a busy target, a closed run."""

    error_type = "Conflict"
    http_status = 409


class PreconditionFailedError(R2CError):
    """An `If-Match` that names a version the resource no longer has: someone else changed it."""

    error_type = "PreconditionFailed"
    http_status = 412


class InvalidInputError(R2CError):
    """The request is well-formed but its content is not acceptable."""

    error_type = "InvalidInput"
    http_status = 422


class DependencyUnavailableError(R2CError):
    """A server this system needs (Temporal, the store) cannot be reached right now."""

    error_type = "DependencyUnavailable"
    http_status = 503


class AuthenticationError(R2CError):
    """No credentials, or credentials that match no active API key."""

    error_type = "Unauthenticated"
    http_status = 401


class PermissionDeniedError(R2CError):
    """The caller's role is too low for the action."""

    error_type = "PermissionDenied"
    http_status = 403


class InfrastructureError(R2CError):
    """The infrastructure could not be brought to the requested state (worth a retry)."""

    error_type = "InfrastructureError"
    http_status = 502


class BadRequestError(R2CError):
    """The request cannot be understood as sent: a token or value this API never gave out."""

    error_type = "BadRequest"
    http_status = 400


class PayloadTooLargeError(R2CError):
    """The request, or what it would make the system store, is over a size limit."""

    error_type = "PayloadTooLarge"
    http_status = 413


class RateLimitedError(R2CError):
    """Too many attempts; `retry_after` says in how many seconds to try again."""

    error_type = "RateLimited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class UpstreamError(R2CError):
    """A server this system depends on refused a request in a way no client can fix."""

    error_type = "UpstreamError"
    http_status = 502
