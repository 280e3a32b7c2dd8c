"""Which notification a deployment's state change is (docs/notifications.md), and what the
event says: names, version, state and phase; never env values or secrets."""

from __future__ import annotations

from typing import Any

from core.models.deployments import FINAL_STATES, DeploymentState, DeploymentStatus, PauseReason
from core.models.notifications import EventType

_FINAL = {
    DeploymentState.SUCCEEDED: EventType.DEPLOYMENT_SUCCEEDED,
    DeploymentState.ROLLED_BACK: EventType.DEPLOYMENT_ROLLED_BACK,
    DeploymentState.ABORTED: EventType.DEPLOYMENT_ABORTED,
    DeploymentState.FAILED: EventType.DEPLOYMENT_FAILED,
}
# Runs that recorded a pause before its type was part of the record (they replay the same
# way) say what kind it is in their words only.
_APPROVAL_WORDS = "waiting for approval"


def event_of(previous: DeploymentState | None, status: DeploymentStatus) -> EventType | None:
    """The event of moving from `previous` (None: no record yet) to `status`, if any."""
    state = status.state
    if state in FINAL_STATES:
        return _FINAL[state] if previous not in FINAL_STATES else None
    if state is DeploymentState.PAUSED:
        if status.pause_reason is PauseReason.APPROVAL or status.phase.startswith(_APPROVAL_WORDS):
            return EventType.DEPLOYMENT_AWAITING_APPROVAL
        return EventType.DEPLOYMENT_PAUSED
    if state is DeploymentState.PROGRESSING:
        if previous in (None, DeploymentState.PENDING):
            return EventType.DEPLOYMENT_STARTED
        if previous is DeploymentState.PAUSED:
            # Promoted, approved, or resumed after a pause by hand: the phase says which.
            return EventType.DEPLOYMENT_PROMOTED
    return None


def event_data(status: DeploymentStatus) -> dict[str, Any]:
    """The event's `data`: what a receiver needs to say what happened and where to look."""
    return {
        "deployment_id": status.deployment_id,
        "component": status.component,
        "environment": status.environment,
        "version": status.version,
        "previous_version": status.previous_version,
        "strategy": status.strategy,
        "state": status.state.value,
        "phase": status.phase,
        "step": status.step,
        "steps": status.steps,
        "reason": status.reason,
        "links": {"deployment": f"/api/v1/deployments/{status.deployment_id}"},
    }
