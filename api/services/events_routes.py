"""The rules of event routes: what a route may do is checked when it is written (its workflow
type exists, its writer's role may start it, its template can validate, its expression
compiles), and every change is audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.services import audit
from api.services.events_matching import check_expression, template_problems
from api.services.orchestration import startable
from core.db import events as store
from core.db.events_tables import EventRouteRow
from core.db.tables import utcnow
from core.errors import ConflictError, InvalidInputError, PermissionDeniedError
from core.models.apikeys import Principal, Role
from core.models.events import MAX_ROUTES, EventRoute, EventRouteCreate, EventRouteSpec


def view(row: EventRouteRow) -> EventRoute:
    return EventRoute.model_validate(
        {
            **row.spec,
            "name": row.name,
            "version": row.version,
            "role": row.role,
            "created_by": row.created_by,
            "created_at": row.created_at,
            "updated_by": row.updated_by,
            "updated_at": row.updated_at,
        }
    )


class EventRouteService:
    """Creates, lists, replaces and deletes event routes (operators write, viewers read)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[EventRoute]:
        return [view(r) for r in await store.routes(self.session)]

    async def get(self, name: str) -> EventRoute:
        return view(await store.get_route(self.session, name))

    async def create(self, principal: Principal, body: EventRouteCreate) -> EventRoute:
        spec = EventRouteSpec.model_validate(body.model_dump(exclude={"name"}))
        self._check(principal, spec)
        if await store.find_route(self.session, body.name) is not None:
            raise ConflictError(
                f"event route {body.name!r} exists",
                hint=f"change it with PUT /api/v1/event-routes/{body.name}",
            )
        if await store.route_count(self.session) >= MAX_ROUTES:
            raise ConflictError(
                f"there are {MAX_ROUTES} event routes, the most allowed",
                hint="delete routes that are no longer used, or combine them with globs",
            )
        now = utcnow()
        row = EventRouteRow(
            name=body.name,
            spec=spec.model_dump(mode="json"),
            enabled=spec.enabled,
            role=principal.role.value,
            version=1,
            created_by=principal.initiator,
            created_at=now,
            updated_by=principal.initiator,
            updated_at=now,
        )
        self.session.add(row)
        try:
            await audit.commit(
                self.session, principal, "event_route.created", body.name, **_summary(spec)
            )
        except IntegrityError:
            await self.session.rollback()
            raise ConflictError(
                f"event route {body.name!r} exists", hint="choose another name"
            ) from None
        return view(row)

    async def replace(self, principal: Principal, name: str, spec: EventRouteSpec) -> EventRoute:
        row = await store.get_route(self.session, name)
        self._check(principal, spec)
        row.spec = spec.model_dump(mode="json")
        row.enabled = spec.enabled
        row.role = principal.role.value
        row.version += 1
        row.updated_by = principal.initiator
        row.updated_at = utcnow()
        await audit.commit(
            self.session,
            principal,
            "event_route.updated",
            name,
            version=row.version,
            **_summary(spec),
        )
        return view(row)

    async def delete(self, principal: Principal, name: str) -> None:
        row = await store.get_route(self.session, name)
        await self.session.delete(row)
        await audit.commit(self.session, principal, "event_route.deleted", name)

    @staticmethod
    def _check(principal: Principal, spec: EventRouteSpec) -> None:
        """Refuse a route that can never act: 422 naming each field, 403 for an action above
        the writer's role (a route acts with its writer's role, so it cannot raise it)."""
        problems: list[dict[str, str]] = []
        if spec.match.expression is not None:
            problem = check_expression(spec.match.expression)
            if problem:
                problems.append({"field": "body.match.expression", "message": problem})
        if spec.start is not None:
            contract = startable(
                principal,
                spec.start.workflow_type,
                "a route that starts",
                field="body.start.workflow_type",
                hint="a route acts with its writer's role; ask an admin to write it",
            )
            if spec.start.input.get("freeze_override", False) is not False:
                # Like an approval, passing a freeze is a person's decision, made when it is
                # needed; a route would make it for every future event.
                problems.append(
                    {
                        "field": "body.start.input.freeze_override",
                        "message": "a route cannot override freezes; an admin deploys "
                        "through a freeze by hand",
                    }
                )
            for p in template_problems(contract.input_model, spec.start.input):
                problems.append({"field": f"body.start.{p['field']}", "message": p["message"]})
        if spec.signal is not None and not principal.role.allows(Role.OPERATOR):
            raise PermissionDeniedError(
                "a route that steers deployments needs the operator role",
                hint="ask an admin for an operator key",
            )
        if problems:
            raise InvalidInputError(
                f"the route can never act as written: {problems[0]['field']}: "
                f"{problems[0]['message']}",
                hint="fix the fields listed; only strings may hold ${...} placeholders, and a "
                "placeholder stands for the part of the input it fills",
                fields=problems,
            )


def _summary(spec: EventRouteSpec) -> dict[str, Any]:
    if spec.start is not None:
        return {"kind": "start", "workflow_type": spec.start.workflow_type}
    assert spec.signal is not None
    return {"kind": "signal", "signal": spec.signal.signal}
