"""Where a deployed target's router answers its admin requests (`/metrics`, `/samples`), or
why it cannot: shared by the measuring and the judging activities."""

from __future__ import annotations

from typing import Literal

from activities.infrastructure.provider import InfrastructureProvider
from core.errors import R2CError


class NoRouter(Exception):
    """The target has no router to ask; the message says why, in words."""


async def router_url(
    provider: InfrastructureProvider,
    component: str,
    environment: str,
    which: Literal["metrics_url", "admin_endpoint"],
    doing: str,
) -> str:
    """The target router's `which` URL (its admin port's `/metrics`, or the port itself);
    NoRouter, saying why in words, when there is none. `doing`: "measure", "judge by"."""
    try:
        state = await provider.state(component, environment)
    except (R2CError, OSError) as err:
        raise NoRouter(f"cannot read the state of {component}/{environment}: {err}") from err
    if state.endpoint is None:
        raise NoRouter(
            f"{component}/{environment} has no router to {doing}: nothing is deployed there"
        )
    url: str | None = getattr(state, which)
    if url is None:
        raise NoRouter(
            f"the router of {component}/{environment} has no admin port yet (started by an "
            "older version); the next deployment step or a worker restart replaces it"
        )
    return url
