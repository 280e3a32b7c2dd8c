"""Every id the system builds from names, in one place.

Names never contain `:` or `.` (`core/models/names.py`), so joining them with those separators
cannot make two targets share an id, and `*` (all environments) is no environment's name.
Workflow ids that start with a system prefix are the system's own: the orchestration API
refuses them from callers, so nobody can squat a deployment's lock with a workflow of theirs.
"""

from __future__ import annotations

DEPLOYMENT_PREFIX = "deploy:"
RETIRE_PREFIX = "retire:"
SYSTEM_PREFIX = "r2c:"  # kept for the system's future workflows (schedules, releases)
RESERVED_PREFIXES = (DEPLOYMENT_PREFIX, RETIRE_PREFIX, SYSTEM_PREFIX)
ALL_ENVIRONMENTS = "*"


def deployment_workflow_id(component: str, environment: str) -> str:
    """One deployment per target at a time: the id is the lock."""
    return f"{DEPLOYMENT_PREFIX}{component}:{environment}"


def retire_workflow_id(component: str, environment: str | None) -> str:
    """One retire per target at a time; `*` stands for every environment."""
    return f"{RETIRE_PREFIX}{component}:{environment or ALL_ENVIRONMENTS}"


def notification_workflow_id(subscription_id: str) -> str:
    """One delivery workflow per subscription: its messages leave one at a time, in order."""
    return f"{SYSTEM_PREFIX}notify:{subscription_id}"


def instance_id(component: str, environment: str, slot: str, number: int) -> str:
    """Unique across targets: `demo.staging.blue.3`."""
    return f"{component}.{environment}.{slot}.{number}"


SCHEDULE_PREFIX = f"{SYSTEM_PREFIX}schedule:"


def schedule_id(name: str) -> str:
    """A schedule's Temporal id, and the id its runs start with (Temporal appends the time):
    under the system prefix, so no caller can start a workflow that passes for a scheduled run."""
    return f"{SCHEDULE_PREFIX}{name}"


def is_reserved(workflow_id: str) -> bool:
    return workflow_id.startswith(RESERVED_PREFIXES)
