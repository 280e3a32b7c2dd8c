"""The retry policies every workflow uses, and the one list of errors never worth a retry.

The list is derived from `core/errors.py`: an error whose HTTP meaning is "your request is
wrong" (404, 409, 422) will be as wrong on the next attempt, so it ends the activity at once;
everything else (an infrastructure hiccup, a store or server that is away) is retried.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from core.errors import ConflictError, InvalidInputError, NotFoundError

FINAL_ERRORS = [e.error_type for e in (ConflictError, InvalidInputError, NotFoundError)]

# Steps that change the world: a flaky start is worth a few more tries, spaced out.
MUTATING = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=6,
    non_retryable_error_types=FINAL_ERRORS,
)
# Reads and records: quick to retry, more times.
QUICK = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=10,
    non_retryable_error_types=FINAL_ERRORS,
)
# Probes: a few tries, then the failure is the answer.
PROBE = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=FINAL_ERRORS,
)
