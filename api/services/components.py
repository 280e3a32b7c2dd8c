"""The rules of the component registry: names are fixed, a runtime does not change under a
running deployment, and instances are stopped before a component goes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowFailureError, WorkflowHandle

from api.gateway import Gateway, StartPolicy, Tags
from api.schemas import InstanceView
from api.services import audit, dependency_checks, exclusion, redaction
from core.contracts import RETIRE_WORKFLOW
from core.db import components as store
from core.db import health as health_store
from core.db import slo as slo_store
from core.db.tables import utcnow
from core.errors import (
    ConflictError,
    DependencyUnavailableError,
    InfrastructureError,
    NotFoundError,
)
from core.ids import retire_workflow_id
from core.models.apikeys import Principal
from core.models.components import Component, ComponentSpec
from core.models.health import NOT_CHECKED
from core.models.operations import RetireRequest, RetireResult

RETIRE_WAIT_SECONDS = 60


@dataclass(frozen=True)
class RetireStarted:
    """A retire workflow, just started or joined while it ran."""

    workflow_id: str
    run_id: str
    created: bool
    handle: WorkflowHandle[Any, Any]


class ComponentService:
    """Registers, changes, retires and removes components; every change is audited."""

    def __init__(self, session: AsyncSession, gateway: Gateway) -> None:
        self.session = session
        self.gateway = gateway

    async def create(self, principal: Principal, spec: ComponentSpec) -> Component:
        """Register a component; a taken name is a 409, a dependency that is not registered
        or that would close a cycle a 422."""
        await store.lock_graph(self.session)
        dependency_checks.check_definition(spec, await store.graph(self.session))
        component = await store.create(self.session, spec)
        await audit.commit(self.session, principal, "component.created", component.name)
        return component.model_copy(update={"health": NOT_CHECKED})

    async def all(self, principal: Principal, owner: str | None) -> list[Component]:
        found = await store.list_all(self.session, owner=owner)
        healths = await health_store.statuses(self.session)
        return [
            redaction.component(
                c.model_copy(update={"health": healths.get(c.id, NOT_CHECKED)}), principal
            )
            for c in found
        ]

    async def get(self, principal: Principal, ref: str) -> Component:
        """The component with its health as the last health check recorded it, and its SLOs'
        error budgets per environment as the health check's readings show them."""
        row = await store.get_row(self.session, ref)
        health = await health_store.status(self.session, row.id)
        spec = slo_store.spec_of(row.slo)
        slo_status = None
        if spec is not None:
            slo_status = await slo_store.statuses(self.session, row.id, spec, utcnow())
        return redaction.component(
            store.to_model(row).model_copy(update={"health": health, "slo_status": slo_status}),
            principal,
        )

    async def instances(self, ref: str) -> list[InstanceView]:
        row = await store.get_row(self.session, ref)
        return [
            InstanceView.model_validate(i, from_attributes=True)
            for i in await store.instances(self.session, row.id)
        ]

    async def replace(self, principal: Principal, ref: str, spec: ComponentSpec) -> Component:
        """Replace the definition. The name is fixed (it names the component's workflows,
        folders and instances); the runtime may not change while a deployment of it runs."""
        # The row first, then the graph: every path that takes both takes them in this order.
        row = await store.lock(self.session, ref)
        await store.lock_graph(self.session)
        if spec.name != row.name:
            raise ConflictError(
                f"a component's name cannot change ({row.name!r} to {spec.name!r}): its "
                "deployments, instances and folders are known by it",
                hint=f"register a new component named {spec.name!r} (POST /api/v1/components), "
                f"deploy it, then delete {row.name!r}",
            )
        if spec.runtime.model_dump(mode="json") != row.runtime:
            await exclusion.refuse_while_deploying(
                self.session, self.gateway, row.name, doing="change its runtime"
            )
        dependency_checks.check_definition(spec, await store.graph(self.session))
        component = await store.replace(self.session, row.id, spec)
        await audit.commit(
            self.session,
            principal,
            "component.replaced",
            component.name,
            revision=component.revision,
        )
        health = await health_store.status(self.session, row.id)
        return component.model_copy(update={"health": health})

    async def delete(self, principal: Principal, ref: str) -> None:
        """Stop the component's instances and routers everywhere, then remove it; 409 while a
        deployment of it runs or starts, before or during the retire, or while other
        components depend on it (checked again at the end: one may have come to)."""
        row = await store.lock(self.session, ref)
        await store.lock_graph(self.session)
        dependency_checks.refuse_if_depended_on(row.name, await store.graph(self.session))
        name, component_id = row.name, row.id
        started = await self._start_retire_locked(row.name, None, principal)
        await self.session.commit()
        await self._wait(started, name)
        # A deployment may have started once the retire ended: then the component stays.
        await store.lock(self.session, component_id)
        await store.lock_graph(self.session)
        dependency_checks.refuse_if_depended_on(name, await store.graph(self.session))
        await exclusion.refuse_while_deploying(
            self.session, self.gateway, name, doing="remove it (its instances were stopped)"
        )
        await store.delete(self.session, component_id)
        await audit.commit(self.session, principal, "component.deleted", name)

    async def retire(self, principal: Principal, ref: str, environment: str | None) -> RetireResult:
        """Stop the component's instances and router in one environment, and wait for it."""
        started = await self.start_retire(principal, ref, environment, registered=True)
        return await self._wait(started, started.workflow_id)

    async def start_retire(
        self, principal: Principal, ref: str, environment: str | None, *, registered: bool
    ) -> RetireStarted:
        """Start (or join) the retire of a component; audited, and refused while a deployment
        of it runs. Unless `registered`, a name no component has is retired too (a deleted
        component may have left processes behind)."""
        try:
            name = (await store.lock(self.session, ref)).name
        except NotFoundError:
            if registered:
                raise
            name = ref  # validated as a component name by the caller's request model
        started = await self._start_retire_locked(name, environment, principal)
        await audit.commit(
            self.session,
            principal,
            "component.retired",
            name,
            environment=environment or "*",
            workflow_id=started.workflow_id,
            run_id=started.run_id,
        )
        return started

    async def _start_retire_locked(
        self, name: str, environment: str | None, principal: Principal
    ) -> RetireStarted:
        await exclusion.refuse_while_deploying(
            self.session, self.gateway, name, environment, doing="retire it"
        )
        workflow_id = retire_workflow_id(name, environment)
        running = await self.gateway.is_running(workflow_id)
        where = environment or "every environment"
        handle = await self.gateway.start(
            RETIRE_WORKFLOW,
            RetireRequest(component=name, environment=environment),
            workflow_id=workflow_id,
            policy=StartPolicy.JOIN,
            tags=Tags(initiator=principal.initiator, component=name, environment=environment),
            summary=f"retire {name} from {where}",
            result_type=RetireResult,
        )
        return RetireStarted(workflow_id, handle.result_run_id or "", not running, handle)

    async def _wait(self, started: RetireStarted, name: str) -> RetireResult:
        """The retire's result: the store changes only once nothing runs any more."""
        try:
            async with asyncio.timeout(RETIRE_WAIT_SECONDS):
                result: RetireResult = await self.gateway.result(
                    started.workflow_id, started.run_id or None, wait=True
                )
                return result
        except TimeoutError:
            raise DependencyUnavailableError(
                f"the instances of {name!r} were not stopped within {RETIRE_WAIT_SECONDS}s; "
                "nothing was removed from the registry",
                hint="check that a worker runs, then repeat the request",
            ) from None
        except WorkflowFailureError as err:
            raise InfrastructureError(
                f"stopping the instances of {name!r} failed: {err.cause}",
                hint="GET /api/v1/orchestration/workflows/" + started.workflow_id + " says why",
            ) from err
