"""Domain errors leave an activity as `ApplicationError`s typed with our vocabulary, so retry
policies and workflows can tell a conflict (final) from a flaky infrastructure (retried)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from core.errors import ConflictError, InvalidInputError, NotFoundError, R2CError

FINAL = (ConflictError, InvalidInputError, NotFoundError)


@contextmanager
def domain_errors() -> Iterator[None]:
    """`with domain_errors(): ...` in an activity body."""
    try:
        yield
    except R2CError as err:
        raise ApplicationError(
            err.message,
            {"hint": err.hint, **err.details},
            type=err.error_type,
            non_retryable=isinstance(err, FINAL),
        ) from err
