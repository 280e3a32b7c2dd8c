"""The API's one way to Temporal: RPC timeouts, id policies, search attributes, page tokens and
the mapping of Temporal's errors to ours live here, and only here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import COMPONENT, DEPLOYMENT_PHASE, ENVIRONMENT, INITIATOR, STRATEGY
from core.errors import (
    BadRequestError,
    ConflictError,
    DependencyUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    R2CError,
    RateLimitedError,
    UpstreamError,
)
from core.settings import Settings

RPC_TIMEOUT = timedelta(seconds=10)
QUERY_TIMEOUT = timedelta(seconds=3)
UPDATE_TIMEOUT = timedelta(seconds=15)

# Temporal says "too large" in words only: INVALID_ARGUMENT "Blob data size exceeds limit." for
# a payload over 2 MB, RESOURCE_EXHAUSTED "... larger than max 4194304" for a gRPC message.
_SIZE_WORDS = ("size exceeds", "larger than max", "too large", "exceeds limit")
_UNREACHABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.UNAUTHENTICATED,
}
_MAC_BYTES = 16


def temporal_unreachable() -> DependencyUnavailableError:
    """The 503 of every route that needs Temporal while it cannot be reached."""
    return DependencyUnavailableError(
        "Temporal is not reachable",
        hint="check that the Temporal server at TEMPORAL_ADDRESS is up; GET /ready tells",
    )


def is_connect_failure(err: BaseException) -> bool:
    """A lazy client that never reached the server raises a bare RuntimeError from the SDK's
    core, not an RPCError; its message is the only way to tell it apart."""
    return isinstance(err, RuntimeError) and str(err).startswith("Failed client connect")


def rpc_error(err: RPCError, what: str) -> R2CError:
    """Temporal's answer to a request about `what`, in our vocabulary (never a 500)."""
    message = err.message
    if any(word in message.lower() for word in _SIZE_WORDS):
        return PayloadTooLargeError(
            f"Temporal refused {what} as too large: {message}",
            hint="send references (ids, paths), not large values: Temporal takes payloads of "
            "at most 2 MB",
        )
    status = err.status
    if status in _UNREACHABLE:
        return temporal_unreachable()
    if status == RPCStatusCode.INVALID_ARGUMENT:
        return BadRequestError(
            f"Temporal refused {what}: {message}", hint="correct the value it names and retry"
        )
    if status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return RateLimitedError(
            f"Temporal is over a rate limit for {what}: {message}",
            retry_after=1,
            hint="retry after the number of seconds in Retry-After",
        )
    if status == RPCStatusCode.NOT_FOUND:
        return NotFoundError(f"{what} not found", hint="check the id; lists show what exists")
    if status in (RPCStatusCode.ALREADY_EXISTS, RPCStatusCode.FAILED_PRECONDITION):
        return ConflictError(f"{what}: {message}", hint="read its current state and retry")
    if status == RPCStatusCode.PERMISSION_DENIED:
        return PermissionDeniedError(
            f"Temporal denied {what}: {message}",
            hint="the API's Temporal credentials lack this permission; ask an operator",
        )
    return UpstreamError(
        f"Temporal failed on {what}: {message}",
        hint="retry; if it persists, the Temporal server's log says why",
    )


@asynccontextmanager
async def mapped(what: str) -> AsyncIterator[None]:
    """Turn Temporal client failures inside the block into our errors."""
    try:
        yield
    except RPCError as err:
        raise rpc_error(err, what) from err
    except RuntimeError as err:
        if is_connect_failure(err):
            raise temporal_unreachable() from err
        raise


class StartPolicy(Enum):
    """What a start does when a workflow with the id exists."""

    ONCE = "once"
    """Never a second workflow with this id, even after the first closed."""
    EXCLUSIVE = "exclusive"
    """One at a time: refused while one runs, a new run once it closed (deployments)."""
    JOIN = "join"
    """A running one is answered instead of starting another (retires)."""


_POLICIES = {
    StartPolicy.ONCE: (WorkflowIDConflictPolicy.FAIL, WorkflowIDReusePolicy.REJECT_DUPLICATE),
    StartPolicy.EXCLUSIVE: (WorkflowIDConflictPolicy.FAIL, WorkflowIDReusePolicy.ALLOW_DUPLICATE),
    StartPolicy.JOIN: (
        WorkflowIDConflictPolicy.USE_EXISTING,
        WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    ),
}


@dataclass(frozen=True)
class Tags:
    """The search attributes a workflow is started with (what the list filters on)."""

    initiator: str
    component: str | None = None
    environment: str | None = None
    strategy: str | None = None
    phase: str | None = None

    def typed(self) -> TypedSearchAttributes:
        keys: list[tuple[SearchAttributeKey[str], str | None]] = [
            (INITIATOR, self.initiator),
            (COMPONENT, self.component),
            (ENVIRONMENT, self.environment),
            (STRATEGY, self.strategy),
            (DEPLOYMENT_PHASE, self.phase),
        ]
        return TypedSearchAttributes([SearchAttributePair(k, v) for k, v in keys if v])


class Gateway:
    """Starts, inspects, steers and lists workflows for the API's services."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        secret = settings.page_token_secret
        # A random key per process unless configured: tokens then work against this process.
        self._token_key = secret.encode() if secret else secrets.token_bytes(32)

    async def start(
        self,
        workflow: str,
        arg: Any,
        *,
        workflow_id: str,
        policy: StartPolicy,
        tags: Tags,
        summary: str,
        details: str | None = None,
        memo: Mapping[str, Any] | None = None,
        result_type: type | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Start `workflow` on the task queue; WorkflowAlreadyStartedError when the policy
        refuses (the caller decides what that means)."""
        conflict, reuse = _POLICIES[policy]
        async with mapped(f"the start of {workflow_id!r}"):
            return await self.client.start_workflow(
                workflow,
                arg,
                id=workflow_id,
                task_queue=self.settings.task_queue,
                result_type=result_type,
                id_conflict_policy=conflict,
                id_reuse_policy=reuse,
                search_attributes=tags.typed(),
                memo=memo,
                static_summary=summary,
                static_details=details,
                rpc_timeout=RPC_TIMEOUT,
            )

    def handle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle[Any, Any]:
        """A handle on a workflow (its latest run unless `run_id`)."""
        return self.client.get_workflow_handle(workflow_id, run_id=run_id)

    async def describe(
        self, workflow_id: str, run_id: str | None = None
    ) -> WorkflowExecutionDescription:
        """The workflow as Temporal sees it now (strongly consistent, unlike the list)."""
        async with mapped(f"workflow {workflow_id!r}"):
            return await self.handle(workflow_id, run_id).describe(rpc_timeout=RPC_TIMEOUT)

    async def is_running(self, workflow_id: str, run_id: str | None = None) -> bool:
        """Whether the workflow (that run, or its latest) is running now."""
        try:
            desc = await self.describe(workflow_id, run_id)
        except NotFoundError:
            return False
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def query(
        self, workflow_id: str, run_id: str | None, name: str, result_type: type | None = None
    ) -> Any:
        """Ask a running workflow a query; RPC errors surface as they are (callers decide
        whether an unanswered query matters)."""
        handle = self.handle(workflow_id, run_id)
        return await handle.query(name, result_type=result_type, rpc_timeout=QUERY_TIMEOUT)

    async def update(
        self, workflow_id: str, run_id: str | None, name: str, arg: Any, result_type: type
    ) -> Any:
        """Run an update and return its answer; WorkflowUpdateFailedError when the workflow
        rejects it, RPCError as it is (NOT_FOUND: the run has closed)."""
        handle = self.handle(workflow_id, run_id)
        return await handle.execute_update(
            name, arg, result_type=result_type, rpc_timeout=UPDATE_TIMEOUT
        )

    async def result(
        self, workflow_id: str, run_id: str | None = None, *, wait: bool = False
    ) -> Any:
        """The result of a run (WorkflowFailureError for one that did not complete). `wait`
        waits for a running one for as long as the caller lets it (no RPC deadline)."""
        async with mapped(f"the result of {workflow_id!r}"):
            return await self.handle(workflow_id, run_id).result(
                follow_runs=False, rpc_timeout=None if wait else RPC_TIMEOUT
            )

    async def signals(self, workflow_id: str, run_id: str) -> list[tuple[str, str, datetime]]:
        """(name, sender identity, time) of every signal the run received, from its history:
        the one record of who sent it (workflow code cannot read a signal's sender)."""
        found = []
        async with mapped(f"the history of {workflow_id!r}"):
            async for event in self.handle(workflow_id, run_id).fetch_history_events(
                rpc_timeout=RPC_TIMEOUT
            ):
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                    attrs = event.workflow_execution_signaled_event_attributes
                    at = event.event_time.ToDatetime(tzinfo=UTC)
                    found.append((attrs.signal_name, attrs.identity, at))
        return found

    async def cancel(self, workflow_id: str, run_id: str, reason: str) -> None:
        async with mapped(f"workflow {workflow_id!r}"):
            await self.handle(workflow_id, run_id).cancel(reason=reason, rpc_timeout=RPC_TIMEOUT)

    async def terminate(self, workflow_id: str, run_id: str, reason: str) -> None:
        async with mapped(f"workflow {workflow_id!r}"):
            await self.handle(workflow_id, run_id).terminate(reason=reason, rpc_timeout=RPC_TIMEOUT)

    async def ids(self, query: str, limit: int = 10) -> list[str]:
        """Ids of the workflows a visibility query matches (eventually consistent)."""
        async with mapped("the workflow list"):
            found = self.client.list_workflows(query, limit=limit, rpc_timeout=RPC_TIMEOUT)
            return [e.id async for e in found]

    async def page(
        self, query: str | None, page_size: int, token: str | None
    ) -> tuple[list[WorkflowExecution], str | None]:
        """One page of a visibility query, and the token of the next (signed by this API:
        Temporal answers a forged token with retries and an internal error)."""
        raw = self._open_token(query, token)
        iterator = self.client.list_workflows(
            query, page_size=page_size, next_page_token=raw, rpc_timeout=RPC_TIMEOUT
        )
        async with mapped("the workflow list"):
            await iterator.fetch_next_page()
        following = iterator.next_page_token
        return list(iterator.current_page or []), self._seal_token(query, following)

    def _mac(self, query: str | None, raw: bytes) -> bytes:
        signed = (query or "").encode() + b"\0" + raw
        return hmac.new(self._token_key, signed, hashlib.sha256).digest()[:_MAC_BYTES]

    def _seal_token(self, query: str | None, raw: bytes | None) -> str | None:
        if not raw:
            return None
        return base64.urlsafe_b64encode(self._mac(query, raw) + raw).decode()

    def _open_token(self, query: str | None, token: str | None) -> bytes | None:
        if not token:
            return None
        try:
            sealed = base64.urlsafe_b64decode(token.encode())
        except (binascii.Error, ValueError, UnicodeError):
            sealed = b""
        mac, raw = sealed[:_MAC_BYTES], sealed[_MAC_BYTES:]
        if not raw or not hmac.compare_digest(mac, self._mac(query, raw)):
            raise BadRequestError(
                "page_token is not a token this API gave out for these filters",
                hint="pass the next_page_token of the previous page unchanged, with the same "
                "filters",
            )
        return raw
