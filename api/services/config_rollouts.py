"""Rolling a configuration change out like a version: after the change is committed, each
affected target that runs gets a deployment of the version it runs with the change's
revision, through `start_deployment` (so policies apply, and a policy where configuration
changes need approval adds its gate)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowExecutionStatus

from api.gateway import Gateway
from api.services import configuration_views as views
from api.services.deployment_start import start_deployment
from api.services.policy_refusals import record_refusal
from core.db import deployments
from core.db.configuration import Current
from core.db.tables import RevisionRow
from core.errors import NotFoundError, R2CError
from core.ids import retire_workflow_id
from core.models.apikeys import Principal
from core.models.config_rollouts import RolledOutEntry, RollOut, RolloutOutcome
from core.models.configuration import Scope
from core.models.deployments import DeploymentRequest
from core.settings import Settings


class RolloutService:
    """Starts the roll-outs of a committed configuration change."""

    def __init__(self, session: AsyncSession, gateway: Gateway, settings: Settings) -> None:
        self.session = session
        self.gateway = gateway
        self.settings = settings

    async def answer(
        self, principal: Principal, key: str, current: Current, plan: RollOut | None
    ) -> RolledOutEntry:
        """The written entry, with the roll-outs `plan` asked for started."""
        entry = views.entry(current)
        outcomes = []
        if plan is not None:
            outcomes = await self.roll_out(
                principal, key, current.scope, current.version.revision, plan
            )
        return RolledOutEntry(**entry.model_dump(), rollouts=outcomes)

    async def roll_out(
        self, principal: Principal, key: str, scope: Scope, revision: int, plan: RollOut
    ) -> list[RolloutOutcome]:
        """Start a deployment of configuration `revision` on every running target `scope`
        reaches (a scope without a component or environment reaches all of them): one a
        deployment succeeded on and no retire stopped since. A target that cannot start one
        (already being deployed: 409; a policy's refusal: 403) is listed with the reason; the
        others still start."""
        targets = await deployments.running_targets(
            self.session, scope.component, scope.environment
        )
        for target in targets:
            # Read only here: a refused start's rollback below must not expire the targets
            # still to come (reading them again would be I/O outside the async session).
            self.session.expunge(target)
        outcomes = []
        for target in targets:
            if await self._retired(target):
                continue
            req = DeploymentRequest(
                component=target.component,
                environment=target.environment,
                version=target.version,
                env=target.env,
                replicas=target.replicas,
                strategy=plan.strategy,
                config=revision,
                description=f"configuration change of {key!r} (revision {revision})",
            )
            outcome = RolloutOutcome(component=target.component, environment=target.environment)
            try:
                started = await start_deployment(
                    self.session,
                    self.gateway,
                    self.settings,
                    principal,
                    req,
                    config_change=True,
                    config_key=key,
                )
            except R2CError as err:
                await self.session.rollback()
                outcome.status, outcome.error = err.http_status, err.message
                # A target's 403 (its policy) is part of a 200: the trail keeps it.
                await record_refusal(
                    self.session,
                    principal,
                    err,
                    target="/api/v1/deployments",
                    via=f"config-rollout:{key}"[:300],
                    component=target.component,
                    environment=target.environment,
                    revision=revision,
                )
            else:
                outcome.deployment_id = started.row.id
            outcomes.append(outcome)
        return outcomes

    async def _retired(self, target: RevisionRow) -> bool:
        """Whether a retire of the target (or of all the component's environments) completed
        after its newest successful deployment: then nothing runs there to roll out to. A
        retire leaves no row in the store, so Temporal is asked (strongly consistent)."""
        for workflow_id in (
            retire_workflow_id(target.component, target.environment),
            retire_workflow_id(target.component, None),
        ):
            try:
                desc = await self.gateway.describe(workflow_id)
            except NotFoundError:
                continue
            if (
                desc.status == WorkflowExecutionStatus.COMPLETED
                and desc.close_time is not None
                and desc.close_time > target.created_at
            ):
                return True
        return False
