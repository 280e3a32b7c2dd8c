"""What a matching route does: start a workflow, or steer a running deployment, through the
same services as the API (role checks, locks, policies, audit), in the route's name
(`route:<name>`, with its writer's role).

A start's Idempotency-Key is the event's (source, id), scoped to the route: a sender's
retry of a delivery answers the workflow the first copy started, and two routes that match
the same event each start their own."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.service import RPCError

from api.gateway import Gateway, is_connect_failure
from api.schemas import WorkflowStartRequest
from api.services.components import ComponentService
from api.services.deployments import DeploymentService
from api.services.events_matching import TemplateError, render
from api.services.line_stops import HALTED_TYPES, refuse_if_stopped
from api.services.orchestration import WorkflowService
from api.services.policy_refusals import is_refusal, record_refusal
from core.db import deployments
from core.errors import DependencyUnavailableError, R2CError, RateLimitedError
from core.models.apikeys import Role
from core.models.deployments import ActionRequest
from core.models.events import ActorPrincipal, EventRouteSpec, RouteOutcome, SignalAction
from core.settings import Settings

log = logging.getLogger("r2c.events")


def route_principal(name: str, role: str) -> ActorPrincipal:
    return ActorPrincipal(key_id=f"route:{name}", name=name, role=Role(role), kind="route")


def idempotency_key(source: str, event_id: str) -> str:
    """The key of one event; `scoped_key` mixes in the route (the principal's key id)."""
    return f"event\x00{source}\x00{event_id}"


class RouteActions:
    """Performs routes' actions; each action in its own session, so one route's failure
    leaves the others' work intact."""

    def __init__(
        self, sessions: async_sessionmaker[Any], gateway: Gateway, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.gateway = gateway
        self.settings = settings

    async def perform(
        self, name: str, role: str, spec: EventRouteSpec, ctx: dict[str, Any]
    ) -> RouteOutcome:
        """The outcome of route `name` for the event `ctx`; never raises for a refusal."""
        outcome = await self._outcome(name, role, spec, ctx)
        if outcome.result == "error":
            log.warning(
                "route %s did not act on event %s from %s: %s",
                name,
                ctx["id"],
                ctx["source"],
                outcome.message,
            )
        return outcome

    async def _outcome(
        self, name: str, role: str, spec: EventRouteSpec, ctx: dict[str, Any]
    ) -> RouteOutcome:
        try:
            async with self.sessions() as session:
                if spec.start is not None:
                    return await self._start(session, name, role, spec, ctx)
                assert spec.signal is not None
                return await self._signal(session, name, role, spec.signal, ctx)
        except TemplateError as err:
            return RouteOutcome(route=name, result="error", message=str(err))
        except R2CError as err:
            if is_refusal(err):  # no client sees this 403: the trail keeps it
                async with self.sessions() as session:
                    await record_refusal(
                        session,
                        route_principal(name, role),
                        err,
                        target="/api/v1/workflows" if spec.start else "/api/v1/deployments",
                        via=f"event-route:{name}",
                        event=f"{ctx.get('source')}/{ctx.get('id')}"[:300],
                    )
            hint = f" ({err.hint})" if err.hint else ""
            # Only a start is tried again: it is idempotent, a signal might act twice.
            transient = isinstance(err, DependencyUnavailableError | RateLimitedError)
            return RouteOutcome(
                route=name,
                result="error",
                message=f"{err.message}{hint}",
                retryable=transient and spec.start is not None,
            )
        except RPCError as err:
            return RouteOutcome(
                route=name,
                result="error",
                message=f"Temporal: {err.message}",
                retryable=spec.start is not None,
            )
        except RuntimeError as err:
            if not is_connect_failure(err):
                raise
            return RouteOutcome(
                route=name,
                result="error",
                message="Temporal is not reachable",
                retryable=spec.start is not None,
            )

    def _services(self, session: AsyncSession) -> tuple[WorkflowService, DeploymentService]:
        deploys = DeploymentService(session, self.gateway, self.settings)
        components = ComponentService(session, self.gateway)
        return WorkflowService(session, self.gateway, self.settings, deploys, components), deploys

    async def _start(
        self,
        session: AsyncSession,
        name: str,
        role: str,
        spec: EventRouteSpec,
        ctx: dict[str, Any],
    ) -> RouteOutcome:
        assert spec.start is not None
        workflows, _ = self._services(session)
        body = WorkflowStartRequest(
            type=spec.start.workflow_type, input=render(spec.start.input, ctx)
        )
        if body.type in HALTED_TYPES:  # stop the line: a route is automation, it waits
            await refuse_if_stopped(session, None, f"{body.type} by event route {name}")
        started = await workflows.start(
            route_principal(name, role), body, idempotency_key(ctx["source"], ctx["id"])
        )
        return RouteOutcome(
            route=name,
            result="started" if started.created else "existing",
            workflow_id=started.id,
            deployment_id=started.deployment_id,
        )

    async def _signal(
        self,
        session: AsyncSession,
        name: str,
        role: str,
        signal: SignalAction,
        ctx: dict[str, Any],
    ) -> RouteOutcome:
        _, deploys = self._services(session)
        target = await _deployment(session, signal, ctx)
        if target is None:
            return RouteOutcome(
                route=name,
                result="error",
                message=f"no deployment of {render(signal.component, ctx)} in "
                f"{render(signal.environment, ctx)} is running",
            )
        reason = render(signal.reason, ctx) or f"event {ctx['id']} from {ctx['source']}"
        request = ActionRequest(full=signal.full, reason=str(reason)[:500])
        await deploys.act(route_principal(name, role), target, signal.signal, request)
        return RouteOutcome(route=name, result="signalled", deployment_id=target)


async def _deployment(
    session: AsyncSession, signal: SignalAction, ctx: dict[str, Any]
) -> str | None:
    """The deployment a signal is for: named, or the newest unfinished one on the target."""
    if signal.deployment is not None:
        return str(render(signal.deployment, ctx))
    component = str(render(signal.component, ctx))
    environment = str(render(signal.environment, ctx))
    running = await deployments.unfinished(session, component, environment)
    if not running:
        return None
    return max(running, key=lambda row: row.created_at).id
