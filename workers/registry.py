"""What the worker runs: every workflow, and the activities bound to their dependencies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from activities.analysis.activities import AnalysisActivities
from activities.analysis.judging import JudgeActivities
from activities.audit import audit_activities
from activities.deployments import DeploymentActivities
from activities.health import HealthActivities
from activities.infrastructure.activities import DEFAULT_VAULT_WAIT, InfrastructureActivities
from activities.infrastructure.provider import InfrastructureProvider
from activities.notifications import notification_activities
from activities.pipelines import pipeline_activities
from activities.releases import release_activities
from activities.schedules import schedule_activities
from activities.slo import SloActivities
from core.db.judgements import SqlJudgementStore
from core.secrets import SecretStore
from core.settings import Settings
from workflows.deployment.background import BackgroundAnalysisWorkflow
from workflows.deployment.workflow import DeploymentWorkflow
from workflows.health_check import ComponentHealthCheckWorkflow
from workflows.notifications import NOTIFICATION_WORKFLOWS
from workflows.pipeline import PipelineWorkflow
from workflows.release import ReleaseWorkflow
from workflows.retire import ComponentRetireWorkflow
from workflows.scheduled import SCHEDULE_WORKFLOWS

WORKFLOWS: Sequence[type] = (
    ComponentHealthCheckWorkflow,
    ComponentRetireWorkflow,
    DeploymentWorkflow,
    BackgroundAnalysisWorkflow,
    ReleaseWorkflow,
    PipelineWorkflow,
    *SCHEDULE_WORKFLOWS,
    *NOTIFICATION_WORKFLOWS,
)


def activities(
    sessions: async_sessionmaker[Any],
    http: httpx.AsyncClient,
    provider: InfrastructureProvider,
    prometheus_url: str | None = None,
    *,
    secrets: SecretStore,
    vault_wait_seconds: float = DEFAULT_VAULT_WAIT,
    client: Client,
    settings: Settings,
) -> list[Callable[..., Any]]:
    health = HealthActivities(sessions, http, client)
    infra = InfrastructureActivities(provider, sessions, secrets, vault_wait_seconds)
    analysis = AnalysisActivities(provider, http, prometheus_url, sessions=sessions)
    judging = JudgeActivities(provider, http, SqlJudgementStore(sessions), prometheus_url)
    deployments = DeploymentActivities(sessions, client)
    slo = SloActivities(sessions, http, provider, settings.slo_sample_seconds)
    return [
        health.list_health_targets,
        health.probe_component,
        health.record_component_health,
        slo.sample_slo_counters,
        infra.ensure_instances,
        infra.set_weights,
        infra.read_state,
        infra.remove_set,
        infra.retire,
        analysis.measure,
        judging.judge_window,
        deployments.record,
        *audit_activities(sessions),
        *schedule_activities(sessions, client, settings),
        *release_activities(sessions, client, settings),
        *pipeline_activities(sessions, client, settings),
        *notification_activities(sessions, http, client, settings),
    ]
