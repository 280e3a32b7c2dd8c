"""`/api/v1/pipelines`: promotion pipelines and their runs (docs/pipelines.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import BaseModel, Field

from api.auth import Operator, Viewer
from api.deps import GatewayDep, SessionDep, SettingsDep
from api.openapi import errors
from api.services.pipelines import Hold, PipelinePage, PipelineService, PipelineView, RunView
from core.models.line_stops import LineStop, LineStopRequest
from core.models.names import ENVIRONMENT_PATTERN
from core.models.pipelines import PipelineRequest, PipelineSpec, RunAction, RunRequest

router = APIRouter(prefix="/api/v1/pipelines", tags=["pipelines"])

Name = Annotated[str, Path(pattern=ENVIRONMENT_PATTERN, max_length=62)]
RunId = Annotated[str, Path(pattern=r"^run-[0-9a-f]{12}$", max_length=40)]
Environment = Annotated[str, Path(pattern=ENVIRONMENT_PATTERN, max_length=62)]


async def _service(
    session: SessionDep, gateway: GatewayDep, settings: SettingsDep
) -> PipelineService:
    return PipelineService(session, gateway, settings)


Pipelines = Annotated[PipelineService, Depends(_service)]


class ActionBody(BaseModel):
    reason: str = Field("", max_length=500)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=PipelineView, responses=errors(409)
)
async def create_pipeline(
    body: PipelineRequest, principal: Operator, service: Pipelines
) -> PipelineView:
    """Define a pipeline: at most 10 stages (environments), each with its gates (soak,
    approval, schedule window, post-promotion analysis), `requires` (fan-in: all or one of
    earlier stages; default the previous one), `auto_promote` and `auto_rollback`. 409 when
    the name is taken; 422 (naming the field) for a stage requiring a later or unknown stage,
    an environment listed twice, an unknown time zone."""
    return await service.create(principal, body)


@router.get("", response_model=PipelinePage)
async def list_pipelines(principal: Viewer, service: Pipelines) -> PipelinePage:  # noqa: ARG001
    """Every pipeline (200 at most), with what is verified where."""
    return await service.page()


@router.get("/{name}", response_model=PipelineView, responses=errors(404))
async def get_pipeline(name: Name, principal: Viewer, service: Pipelines) -> PipelineView:  # noqa: ARG001
    """The definition and, per environment, the combination verified there (since when, by
    which run) and its hold; the pipeline's line stop; its newest runs."""
    return await service.get(name)


@router.put("/{name}", response_model=PipelineView, responses=errors(404, 409))
async def replace_pipeline(
    name: Name, body: PipelineSpec, principal: Operator, service: Pipelines
) -> PipelineView:
    """Replace the stages. 409 while a run is active."""
    return await service.replace(principal, name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404, 409))
async def delete_pipeline(name: Name, principal: Operator, service: Pipelines) -> Response:
    """Delete the pipeline with its runs' records, verifications and holds (the audit chain
    keeps the history). 409 while a run is active."""
    await service.delete(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{name}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunView,
    responses=errors(404, 502),
)
async def start_run(
    name: Name, body: RunRequest, principal: Operator, service: Pipelines
) -> RunView:
    """Promote `components` (name: version), exactly this combination, stage by stage. 422
    for a component that is not registered."""
    return await service.start_run(principal, name, body)


@router.get("/{name}/runs/{run_id}", response_model=RunView, responses=errors(404, 502))
async def get_run(name: Name, run_id: RunId, principal: Viewer, service: Pipelines) -> RunView:  # noqa: ARG001
    """Each stage's state, the gate it waits on and why, its release: live while it runs."""
    return await service.get_run(name, run_id)


@router.post(
    "/{name}/runs/{run_id}/{action}", response_model=RunView, responses=errors(404, 409, 502)
)
async def act_on_run(
    name: Name,
    run_id: RunId,
    action: RunAction,
    principal: Operator,
    service: Pipelines,
    body: ActionBody | None = None,
) -> RunView:
    """`pause` (before the next gate or stage), `resume`, `abort` (a running release undoes
    what it moved), `approve` the stage waiting for approval (403 naming the role when the
    gate needs admin), `promote` a stage without auto-promotion. 409 once the run ended or
    when nothing waits for the action."""
    return await service.act(principal, name, run_id, action, (body or ActionBody()).reason)


@router.post(
    "/{name}/environments/{environment}/propagate-rollback",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunView,
    responses=errors(404, 409, 502),
)
async def propagate_rollback(
    name: Name,
    environment: Environment,
    principal: Operator,
    service: Pipelines,
    body: ActionBody | None = None,
) -> RunView:
    """After `environment` was rolled back (by a person, or by a run's automatic rollback),
    move every environment downstream of it (the stages whose `requires` reach it), in
    pipeline order, to the combination serving there now: a run whose stages are releases,
    each environment then held as a person's rollback would hold it. 409 naming why when a
    run is active, nothing downstream needs it, or the combination was never verified in one
    of them (nothing moves then). Never automatic."""
    return await service.propagate_rollback(
        principal, name, environment, (body or ActionBody()).reason
    )


@router.delete("/{name}/holds/{environment}", response_model=Hold, responses=errors(404))
async def release_hold(
    name: Name, environment: Environment, principal: Operator, service: Pipelines
) -> Hold:
    """Release the hold on auto-promotion into `environment` (set when a person rolled it
    back or pinned an older combination there)."""
    return await service.release_hold(principal, name, environment)


@router.put("/{name}/stop", response_model=LineStop, responses=errors(404))
async def stop_pipeline(
    name: Name, body: LineStopRequest, principal: Operator, service: Pipelines
) -> LineStop:
    """Stop the line of this pipeline: no stage of any of its runs starts until it is
    cleared (its runs wait, showing the reason)."""
    return await service.stop(principal, name, body.reason)


@router.delete("/{name}/stop", response_model=LineStop, responses=errors(404))
async def restart_pipeline(name: Name, principal: Operator, service: Pipelines) -> LineStop:
    """Clear the pipeline's line stop (the global one, if set, still holds)."""
    return await service.unstop(principal, name)
