"""Releases: started (checked, recorded and audited, then the workflow), read live while they
run and from the store once ended, aborted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.gateway import Gateway, StartPolicy, Tags
from api.scope_checks import check, readable
from api.services import audit
from core import dependency_graph
from core.db import releases as store
from core.db.releases_tables import ReleaseRow
from core.db.tables import ComponentRow, utcnow
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models.apikeys import Principal, Role
from core.models.deployments import ActionRequest
from core.models.releases import (
    FINAL_RELEASE_STATES,
    RELEASE_WORKFLOW,
    ReleaseInput,
    ReleaseRequest,
    ReleaseState,
    ReleaseStatus,
    release_workflow_id,
)
from core.settings import Settings


class ReleaseLinks(BaseModel):
    self: str
    abort: str
    temporal_ui: str


class ReleaseView(BaseModel):
    """A release as the API shows it: live from its workflow while it runs."""

    id: str
    environment: str
    components: dict[str, str]
    state: ReleaseState
    reason: str | None = None
    failed_component: str | None = None
    initiator: str
    created_at: datetime
    finished_at: datetime | None = None
    status: ReleaseStatus | None = None
    links: ReleaseLinks
    redacted: int = Field(
        0, description="components left out: the caller may not read them (names hidden too)"
    )


class ReleasePage(BaseModel):
    items: list[ReleaseView]


def _invalid(message: str, hint: str, field: str = "body.components") -> InvalidInputError:
    return InvalidInputError(message, hint=hint, fields=[{"field": field, "message": message}])


class ReleaseService:
    def __init__(
        self, session: AsyncSession, gateway: Gateway, settings: Settings, root_path: str = ""
    ) -> None:
        self.session = session
        self.gateway = gateway
        self.settings = settings
        self.root_path = root_path

    def check_scope(self, principal: Principal, role: Role, row_or_req: Any) -> None:
        """Every component of the release, in its environment (403 names the first out)."""
        for component in sorted(row_or_req.components):
            check(principal, role, component, row_or_req.environment)

    async def start(
        self,
        principal: Principal,
        req: ReleaseRequest,
        *,
        release_id: str | None = None,
        start_workflow: bool = True,
    ) -> ReleaseView:
        """Check, record, start and audit a release. `start_workflow=False` (a pipeline's
        stage): everything but the start, which its caller makes as a child workflow."""
        self.check_scope(principal, Role.OPERATOR, req)
        await self._refuse_unplannable(req)
        release_id = release_id or f"rel-{uuid.uuid4().hex[:12]}"
        inp = ReleaseInput(
            **req.model_dump(),
            release_id=release_id,
            initiator=principal.initiator,
            ui_actions=self.settings.ui_actions,
        )
        row = ReleaseRow(
            id=release_id,
            environment=req.environment,
            components=dict(req.components),
            request=req.model_dump(mode="json"),
            state=ReleaseState.PENDING.value,
            initiator=principal.initiator,
            workflow_id=release_workflow_id(release_id),
            created_at=utcnow(),
        )
        self.session.add(row)
        await self.session.flush()
        if start_workflow:
            handle = await self.gateway.start(
                RELEASE_WORKFLOW,
                inp,
                workflow_id=row.workflow_id,
                policy=StartPolicy.ONCE,
                tags=Tags(initiator=principal.initiator, environment=req.environment),
                summary=f"release of {len(req.components)} components to {req.environment}",
            )
            row.run_id = handle.result_run_id
        await audit.commit(
            self.session,
            principal,
            "release.created",
            release_id,
            environment=req.environment,
            components=dict(req.components),
            workflow_id=row.workflow_id,
            run_id=row.run_id,
        )
        return self.view(row, None)

    async def _refuse_unplannable(self, req: ReleaseRequest) -> None:
        """422 for components that are not registered, strategies of components the release
        does not move, and a dependency cycle among what is registered."""
        extra = sorted(set(req.strategies) - set(req.components))
        if extra:
            raise _invalid(
                f"strategies name components the release does not move: {', '.join(extra)}",
                hint="give a strategy only to a component in `components`",
                field="body.strategies",
            )
        rows = (await self.session.execute(select(ComponentRow))).scalars().all()
        graph = {r.name: [str(d["component"]) for d in (r.depends_on or [])] for r in rows}
        unknown = sorted(set(req.components) - set(graph))
        if unknown:
            raise _invalid(
                f"no component {', '.join(unknown)}",
                hint="register it first: POST /api/v1/components",
            )
        try:
            dependency_graph.waves(graph, req.components)
        except ValueError as err:
            raise _invalid(str(err), hint="break the cycle in the components' depends_on") from None

    async def page(self, principal: Principal) -> ReleasePage:
        """The newest releases the caller may read a component of, each redacted to those."""
        rows = await store.newest(self.session)
        views = (redact(principal, self.view(r, None)) for r in rows)
        return ReleasePage(items=[v for v in views if v is not None])

    async def _visible(self, principal: Principal, release_id: str) -> ReleaseRow:
        """The release, if the caller may read every component of it: else 404, as the list
        leaves it out."""
        row = await store.get(self.session, release_id)
        may = readable(principal)
        if not principal.reads_everything and not all(
            may(c, row.environment) for c in row.components
        ):
            raise NotFoundError(
                f"no release {release_id!r}", hint="GET /api/v1/releases lists them"
            )
        return row

    async def get(self, principal: Principal, release_id: str) -> ReleaseView:
        """The release, live; a caller scoped to some of its components sees it redacted to
        those (404 when they may read none of them, as the list leaves it out)."""
        row = await store.get(self.session, release_id)
        if redact(principal, self.view(row, None)) is None:
            raise NotFoundError(
                f"no release {release_id!r}", hint="GET /api/v1/releases lists them"
            )
        live: ReleaseStatus | None = None
        # A release a pipeline started has no run id here (its parent started it): its id
        # names one workflow, so the latest run is the release's.
        if ReleaseState(row.state) not in FINAL_RELEASE_STATES:
            try:
                live = await self.gateway.query(
                    row.workflow_id, row.run_id, "status", ReleaseStatus
                )
            except Exception:  # no worker answered (or it just ended): the stored state stands
                live = None
        view = redact(principal, self.view(row, live))
        assert view is not None  # checked above; what it may read does not change in between
        return view

    async def abort(self, principal: Principal, release_id: str, reason: str) -> ReleaseView:
        row = await self._visible(principal, release_id)
        self.check_scope(principal, Role.OPERATOR, row)
        if ReleaseState(row.state) in FINAL_RELEASE_STATES:
            raise ConflictError(
                f"release {release_id} is {row.state}; nothing to abort",
                hint="GET it to see how it ended",
            )
        req = ActionRequest(by=principal.initiator, role=principal.role, reason=reason)
        try:
            status: ReleaseStatus = await self.gateway.update(
                row.workflow_id, row.run_id, "abort", req, ReleaseStatus
            )
        except WorkflowUpdateFailedError as err:
            message = getattr(err.cause, "message", None) or str(err.cause)
            raise ConflictError(
                f"cannot abort release {release_id}: {message}", hint="GET it to see its state"
            ) from None
        except RPCError:
            raise ConflictError(
                f"release {release_id} has finished; nothing to abort",
                hint="GET it to see how it ended",
            ) from None
        await audit.commit(self.session, principal, "release.aborted", release_id, reason=reason)
        return self.view(row, status)

    def view(self, row: ReleaseRow, live: ReleaseStatus | None) -> ReleaseView:
        s = self.settings
        ui = f"{s.temporal_ui}/namespaces/{s.temporal_namespace}/workflows"
        stored = ReleaseStatus.model_validate(row.status) if row.status else None
        status = live or stored
        state = status.state if status is not None else ReleaseState(row.state)
        base = f"{self.root_path}/api/v1/releases/{row.id}"
        return ReleaseView(
            id=row.id,
            environment=row.environment,
            components=dict(row.components),
            state=state,
            reason=status.reason if status is not None else row.reason,
            failed_component=status.failed_component if status is not None else None,
            initiator=row.initiator,
            created_at=row.created_at,
            finished_at=row.finished_at,
            status=status,
            links=ReleaseLinks(
                self=base, abort=f"{base}/abort", temporal_ui=f"{ui}/{row.workflow_id}"
            ),
        )


REDACTED = "(redacted)"


def redact(principal: Principal, view: ReleaseView) -> ReleaseView | None:
    """The release as a caller scoped to some of its components sees it: those it may not read
    are left out of `components`, of each wave (a placeholder keeps the wave's size) and of the
    graph, and counted in `redacted`; a reason that names one of them is replaced. Names are
    hidden, not kept: a scoped caller's component list does not show them either. None when
    it may read none of them. (Actions on a release need every component: `_visible`.)"""
    if principal.reads_everything:
        return view
    may = readable(principal)
    hidden = {c for c in view.components if not may(c, view.environment)}
    if not hidden:
        return view
    if len(hidden) == len(view.components):
        return None

    def clean(text: str | None) -> str | None:
        if text is None or not any(name in text for name in hidden):
            return text
        return "it concerns a component you may not read"

    status = view.status
    if status is not None:
        status = status.model_copy(
            update={
                "reason": clean(status.reason),
                "failed_component": None
                if status.failed_component in hidden
                else status.failed_component,
                "graph": {
                    name: [d for d in deps if d not in hidden]
                    for name, deps in status.graph.items()
                    if name not in hidden
                },
                "waves": [[REDACTED if c in hidden else c for c in w] for w in status.waves],
                "components": {
                    name: p.model_copy(update={"reason": clean(p.reason)})
                    for name, p in status.components.items()
                    if name not in hidden
                },
                "notices": [n for n in status.notices if clean(n) == n],
            }
        )
    return view.model_copy(
        update={
            "components": {c: v for c, v in view.components.items() if c not in hidden},
            "reason": clean(view.reason),
            "failed_component": None if view.failed_component in hidden else view.failed_component,
            "status": status,
            "redacted": len(hidden),
        }
    )
