"""The dashboard's pages and actions, as the signed-in person (the session's principal).

Reads and actions go through the API's own services with the same role and scope checks,
so the dashboard can never do more than the person's key or token could through the API;
an action's button is hidden from a viewer and refused (403, audited) anyway.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.auth_audit import record_refusal
from api.live.streams import event_response
from api.scope_checks import check, readable
from api.services.component_graph import build as build_graph
from api.services.components import ComponentService
from api.services.deployments import DeploymentService
from api.ui import csrf, traffic
from api.ui import sessions as ui_sessions
from api.ui.render import page
from api.ui.sessions import UiSession
from core.db import deployments as deployment_store
from core.db.tables import utcnow
from core.errors import AuthenticationError, PermissionDeniedError
from core.models.apikeys import Principal, Role
from core.models.deployments import FINAL_STATES, DeploymentState

router = APIRouter()
UiAction = Literal["promote", "pause", "resume", "abort", "approve", "rollback"]
PAGE_SIZE = 50


class NotSignedIn(AuthenticationError):
    """No live session: pages redirect to the sign-in page."""


async def _signed_in(request: Request) -> tuple[UiSession, Principal]:
    session = await ui_sessions.of(request).current(request)
    if session is None or session.principal is None:
        raise NotSignedIn("sign in to use the dashboard", hint="/ui/login")
    request.state.principal = session.principal
    return session, session.principal


def _root(request: Request) -> str:
    # Links the API makes point at the API, not at this mount.
    return str(request.scope.get("root_path", "")).removesuffix("/ui")


def _deployments(request: Request, db: Any) -> DeploymentService:
    state = request.app.state
    return DeploymentService(db, state.gateway, state.settings, _root(request))


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/ui/deployments", status_code=303)


@router.get("/components")
async def components_page(request: Request) -> Response:
    """Every component the person may read: per environment, the version serving, its
    router endpoint and how many of its instances run."""
    session, principal = await _signed_in(request)
    state = request.app.state
    may_read = readable(principal)
    async with state.sessions() as db:
        service = ComponentService(db, state.gateway)
        components = [c for c in await service.all(principal, None) if may_read(c.name, None)]
        graph = await build_graph(db, principal)
        instances = {c.name: await service.instances(c.name) for c in components}
    serving = {node.name: node.environments for node in graph.nodes}
    rows = []
    for c in components:
        running: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for i in instances[c.name]:
            running[i.environment][1] += 1
            running[i.environment][0] += i.state == "running"
        envs = sorted(set(serving.get(c.name, {})) | set(running))
        rows.append({
            "component": c,
            "environments": [
                {
                    "name": env,
                    "serving": serving.get(c.name, {}).get(env),
                    "running": running[env][0] if env in running else 0,
                    "instances": running[env][1] if env in running else 0,
                }
                for env in envs
                if may_read(c.name, env)
            ],
        })  # fmt: skip
    return page(request, "components.html", session=session, rows=rows)


@router.get("/deployments")
async def deployments_page(
    request: Request,
    component: Annotated[str, Query(max_length=63)] = "",
    environment: Annotated[str, Query(max_length=63)] = "",
    state: Annotated[DeploymentState | Literal[""], Query()] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """The deployments the person may read, newest first, filtered."""
    session, principal = await _signed_in(request)
    async with request.app.state.sessions() as db:
        found = await _deployments(request, db).page(
            component=component or None,
            environment=environment or None,
            state=state or None,
            limit=PAGE_SIZE,
            offset=offset,
            principal=principal,
        )
    return page(
        request,
        "deployments.html",
        session=session,
        deployments=found,
        filters={"component": component, "environment": environment,
                 "state": state.value if state else ""},
        states=[s.value for s in DeploymentState],
    )  # fmt: skip


@router.get("/deployments/{deployment_id}")
async def deployment_page(request: Request, deployment_id: str) -> Response:
    """The live page of one deployment (its JS follows the event stream below)."""
    session, principal = await _signed_in(request)
    async with request.app.state.sessions() as db:
        view = await _deployments(request, db).get(deployment_id)
        row = await deployment_store.get(db, deployment_id)
    check(principal, Role.VIEWER, view.component, view.environment)
    may_act = principal.may(Role.OPERATOR, view.component, view.environment, write=True)
    return page(
        request,
        "deployment.html",
        session=session,
        view=view,
        may_act=may_act,
        final=view.state in FINAL_STATES,
        initial=_script_json(view.model_dump_json(by_alias=True)),
        plan=_script_json(json.dumps(plan_of(row.request or {}))),
    )


def plan_of(request: dict[str, Any]) -> list[str]:
    """The strategy's steps in words ("set weight 20%", "pause 2s"), from the stored request:
    the status counts steps, the request says what each one is."""
    strategy = request.get("strategy")
    steps = strategy.get("steps") if isinstance(strategy, dict) else None
    if not isinstance(steps, list):
        return []
    out = []
    for step in steps[:200]:
        kind, value = next(iter(step.items())) if isinstance(step, dict) and step else ("?", None)
        if kind == "set_weight":
            out.append(f"set weight {value}%")
        elif kind == "pause":
            duration = value.get("duration") if isinstance(value, dict) else None
            if isinstance(duration, int | float) and not isinstance(duration, bool):
                duration = f"{duration:g}s"  # stored in seconds: "2s" is kept as 2.0
            out.append(f"pause {duration}" if duration else "pause until promoted")
        else:
            out.append(str(kind).replace("_", " "))
    return out


def _script_json(body: str) -> str:
    """JSON safe inside <script type="application/json">: no `</script>` can close it."""
    return body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/deployments/{deployment_id}/events")
async def deployment_events(
    request: Request,
    deployment_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
) -> Response:
    """The API's event stream of the deployment, for a browser's EventSource (which sends
    the session cookie, not a bearer key): the same hub and poller as
    GET /api/v1/deployments/{id}/events, so a page costs no more than a CLI watcher."""
    _, principal = await _signed_in(request)
    app = request.app
    async with app.state.sessions() as db:
        row = await deployment_store.get(db, deployment_id)
    check(principal, Role.VIEWER, row.component, row.environment)
    root = _root(request)

    async def fetch() -> tuple[str, bool]:
        async with app.state.sessions() as poll_session:
            service = DeploymentService(poll_session, app.state.gateway, app.state.settings, root)
            view = await service.get(deployment_id)
        return view.model_dump_json(by_alias=True), view.state in FINAL_STATES

    key = ("deployment", deployment_id)
    return event_response(request, key, fetch, last_event_id)


@router.get("/deployments/{deployment_id}/traffic")
async def deployment_traffic(request: Request, deployment_id: str) -> Response:
    """Error rate and latency per version over the deployment's time (api/ui/traffic.py),
    for the page's chart."""
    _, principal = await _signed_in(request)
    async with request.app.state.sessions() as db:
        row = await deployment_store.get(db, deployment_id)
    check(principal, Role.VIEWER, row.component, row.environment)
    end = row.finished_at or utcnow()
    found = await traffic.per_version(
        request.app.state.settings, row.component, row.environment, row.created_at, end
    )
    return JSONResponse(found)


@router.post("/deployments/{deployment_id}/actions/{action}")
async def act(request: Request, deployment_id: str, action: UiAction) -> Response:
    """An action on the deployment, as the signed-in person: CSRF token, role and scope
    checked, then the same service call (and audit event) as the API's route."""
    store = ui_sessions.of(request)
    session = await store.current(request)
    await csrf.check(request, session)
    if session is None or session.principal is None:
        raise NotSignedIn("sign in to use the dashboard", hint="/ui/login")
    principal = session.principal
    request.state.principal = principal
    if not principal.role.allows(Role.OPERATOR):
        await record_refusal(
            request, "auth.denied", reason="role", principal=principal,
            role=principal.role.value, required=Role.OPERATOR.value,
        )  # fmt: skip
        raise PermissionDeniedError(
            f"{action} needs the operator role; {principal.initiator} has {principal.role.value}",
            hint="ask an admin for a higher role",
        )
    async with request.app.state.sessions() as db:
        service = _deployments(request, db)
        row = await deployment_store.get(db, deployment_id)
        check(principal, Role.OPERATOR, row.component, row.environment)
        target = deployment_id
        if action == "rollback":
            started = await service.rollback(principal, deployment_id, None)
            target = started.row.id if started is not None else deployment_id
        else:
            await service.act(principal, deployment_id, action, None)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"action": action, "deployment": target})
    return RedirectResponse(f"/ui/deployments/{target}", status_code=303)
