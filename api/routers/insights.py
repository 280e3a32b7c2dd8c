"""`/api/v1/insights`: DORA figures of the deployments in the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import Viewer
from api.deps import SessionDep
from api.openapi import errors
from api.scope_checks import readable
from api.services.insights import Insights, insights
from core.models.insights import DEFAULT_WINDOW, Window
from core.models.names import EnvironmentName

router = APIRouter(prefix="/api/v1/insights", tags=["insights"])


@router.get("", response_model=Insights, responses=errors(404, 422))
async def get_insights(
    principal: Viewer,
    session: SessionDep,
    component: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    environment: Annotated[EnvironmentName | None, Query()] = None,
    window: Annotated[Window, Query(description="`<n>h` or `<n>d`, at most 365d")] = (
        DEFAULT_WINDOW
    ),
) -> Insights:
    """Deployment frequency, lead time, change failure rate and time to restore of each
    (component, environment) and overall, over the window (default 30d); 404 for a
    component that is not registered, 422 for a window that is not `<n>h`/`<n>d` up to 365d.
    A scoped key or token that may not read everything gets the figures of its scope."""
    return await insights(
        session,
        window=window,
        component=component,
        environment=environment,
        readable=None if principal.reads_everything else readable(principal),
    )
