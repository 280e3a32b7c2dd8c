"""`/api/v1/releases`: several components deployed in dependency order (docs/releases.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, Field

from api.auth import Operator, Viewer
from api.deps import GatewayDep, SessionDep, SettingsDep
from api.openapi import errors
from api.services.releases import ReleasePage, ReleaseService, ReleaseView
from core.models.releases import ReleaseRequest

router = APIRouter(prefix="/api/v1/releases", tags=["releases"])

ReleaseId = Annotated[str, Path(pattern=r"^rel-[0-9a-f]{12}$", max_length=40)]


async def _service(
    request: Request, session: SessionDep, gateway: GatewayDep, settings: SettingsDep
) -> ReleaseService:
    return ReleaseService(session, gateway, settings, request.scope.get("root_path", ""))


Releases = Annotated[ReleaseService, Depends(_service)]


class AbortBody(BaseModel):
    reason: str = Field("", max_length=500)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReleaseView,
    responses=errors(502),
)
async def start_release(
    body: ReleaseRequest, principal: Operator, service: Releases
) -> ReleaseView:
    """Deploy `components` (name: version, at most 50) to `environment` in dependency order:
    waves of components whose dependencies are in earlier waves, each wave in parallel, each
    component by a child deployment workflow with `strategies[name]`, else `strategy`, else
    rolling. A failure anywhere rolls back what the release moved, in reverse order. 422 for
    an unknown component or a dependency cycle; 403 for a component or environment outside
    the caller's scope."""
    return await service.start(principal, body)


@router.get("", response_model=ReleasePage, responses=errors(502))
async def list_releases(principal: Viewer, service: Releases) -> ReleasePage:
    """The newest releases (200 at most) that the caller may read every component of."""
    return await service.page(principal)


@router.get("/{release_id}", response_model=ReleaseView, responses=errors(404, 502))
async def get_release(release_id: ReleaseId, principal: Viewer, service: Releases) -> ReleaseView:
    """The release's waves and each component's deployment, state and times: live while it
    runs, as it ended afterwards."""
    return await service.get(principal, release_id)


@router.post("/{release_id}/abort", response_model=ReleaseView, responses=errors(404, 409, 502))
async def abort_release(
    release_id: ReleaseId,
    principal: Operator,
    service: Releases,
    body: AbortBody | None = None,
) -> ReleaseView:
    """Stop the release: its running deployments abort (each undoes itself) and the
    components it moved are rolled back in reverse dependency order. 409 once it has ended."""
    return await service.abort(principal, release_id, (body or AbortBody()).reason)
