"""Environment policies: written by admins (each write a version), enforced on every deployment
start and every configuration change. A refusal is a 403 naming the policy (environment and
version) and the rule; a gate a policy requires is added to the deployment's plan."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.services import audit
from core import policies as rules
from core.db import audit as audit_store
from core.db import policies as store
from core.errors import (
    ConflictError,
    InvalidInputError,
    PermissionDeniedError,
    PreconditionFailedError,
)
from core.logging import request_id_var
from core.models.apikeys import Principal, Role
from core.models.deployments import DeploymentRequest
from core.models.policies import (
    Policy,
    PolicySpec,
    PolicyVersion,
    PolicyVersionPage,
    RequiredApproval,
)

OVERRIDDEN = "policy.overridden"


def _now() -> datetime:
    return datetime.now(UTC)


def refusal(
    policy: Policy, violation: rules.Violation, doing: str, hint: str
) -> PermissionDeniedError:
    """The 403 of a request the policy forbids: it names the policy and the rule."""
    return PermissionDeniedError(
        f"policy {policy.label} forbids {doing}: rule {violation.rule}: {violation.message}",
        hint=hint,
        policy=policy.label,
        environment=policy.environment,
        policy_version=policy.version,
        rule=violation.rule,
    )


def etag(policy: Policy) -> str:
    """A strong ETag naming the environment's policy version."""
    return f'"{policy.environment}.v{policy.version}"'


def check_if_match(if_match: str | None, current: Policy | None, environment: str) -> None:
    """Refuse with 412 unless `If-Match` (when sent) names the policy in force; `*` asks only
    that there is one."""
    if if_match is None:
        return
    tags = {t.strip() for t in if_match.split(",") if t.strip()}
    if current is not None and ("*" in tags or etag(current) in tags):
        return
    now = "has no policy" if current is None else f"is at version {current.version}"
    raise PreconditionFailedError(
        f"If-Match {if_match[:100]!r} does not match: {environment} {now}",
        hint=f"GET /api/v1/policies/{environment} again and send its ETag in If-Match",
    )


class PolicyService:
    """Reads and writes environment policies; every write is a new version, audited."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[Policy]:
        return await store.list_all(self.session)

    async def get(self, environment: str) -> Policy:
        return await store.get(self.session, environment)

    async def put(
        self,
        principal: Principal,
        environment: str,
        spec: PolicySpec,
        if_match: str | None = None,
    ) -> Policy:
        """Write a new version; a rule that does not compile, reads an unknown variable or does
        not answer a boolean is a 422 naming it, and nothing is written. With `If-Match`, a
        policy changed since it was read is a 412."""
        problems = [
            {
                "field": f"body.rules[{i}].expression",
                "message": f"rule {rule.name!r}: {problem}",
            }
            for i, rule in enumerate(spec.rules)
            if (problem := rules.rule_problem(rule)) is not None
        ]
        if problems:
            raise InvalidInputError(
                f"{len(problems)} rule(s) cannot be used: "
                + "; ".join(p["message"] for p in problems),
                hint="rules are CEL expressions over `request` and `now` that answer a boolean; "
                "docs/policies.md lists the variables",
                fields=problems,
            )
        expected = await self._checked(if_match, environment)
        try:
            policy = await store.put(self.session, environment, spec, principal.initiator, expected)
        except ConflictError as err:
            raise _stale(err, if_match) from None
        await audit.commit(
            self.session, principal, "policy.updated", environment, version=policy.version
        )
        return policy

    async def delete(
        self, principal: Principal, environment: str, if_match: str | None = None
    ) -> None:
        expected = await self._checked(if_match, environment)
        try:
            version = await store.delete(self.session, environment, principal.initiator, expected)
        except ConflictError as err:
            raise _stale(err, if_match) from None
        await audit.commit(self.session, principal, "policy.deleted", environment, version=version)

    async def _checked(self, if_match: str | None, environment: str) -> int | None:
        """With `If-Match`: the version it names, which the write then replaces only if it is
        still the one in force (so two writers with the same ETag cannot both succeed)."""
        if if_match is None:
            return None
        current = await store.find(self.session, environment)
        check_if_match(if_match, current, environment)
        assert current is not None  # check_if_match refuses a missing policy
        return current.version

    async def versions(self, environment: str, limit: int, offset: int) -> PolicyVersionPage:
        rows, total = await store.versions(self.session, environment, limit, offset)
        items = [
            PolicyVersion(
                environment=r.environment,
                version=r.version,
                deleted=r.spec is None,
                spec=PolicySpec.model_validate(r.spec) if r.spec is not None else None,
                created_by=r.created_by,
                created_at=r.created_at,
            )
            for r in rows
        ]
        more = offset + len(rows) < total
        return PolicyVersionPage(
            items=items, total=total, next_offset=offset + limit if more else None
        )


def _stale(err: ConflictError, if_match: str | None) -> ConflictError | PreconditionFailedError:
    """Two writers at once: the one that lost sees 412 if it sent If-Match, else 409."""
    if if_match is None:
        return err
    return PreconditionFailedError(err.message, hint=err.hint)


# ----------------------------------------------------------------------------- deployments


async def planned_deployment(
    session: AsyncSession, req: DeploymentRequest, *, config_change: bool = False
) -> tuple[DeploymentRequest, Policy | None]:
    """The request with the gates its environment's policy requires, and that policy. The
    roll-out of a configuration change (`config_change`) where such changes need approval
    waits for one too: the policy's required approval, or one operator's."""
    policy = await store.find(session, req.environment)
    if policy is None:
        return req, None
    spec: PolicySpec = policy
    if config_change and policy.config_changes_need_approval and not policy.required_approval:
        spec = policy.model_copy(update={"required_approval": RequiredApproval()})
    try:
        return rules.with_required_gates(spec, policy.label, req), policy
    except rules.PolicyGateError as err:
        raise refusal(
            policy,
            rules.Violation("required_approval", str(err)),
            "this deployment",
            "shorten the canary so the required approval step fits",
        ) from None


def enforce_deployment(
    policy: Policy | None,
    principal: Principal,
    req: DeploymentRequest,
    *,
    rollback_of: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Refuse (403) a deployment the policy forbids; answers what the audit event records
    about the policy (its label, and a freeze an admin overrode).

    A rollback restores a version that ran before: freeze windows and the strategy fields do
    not stop it (it is how a frozen environment is repaired), but the rules and gates apply.
    """
    if policy is None:
        return {}
    now = now or _now()
    doing = f"deploying {req.component} to {req.environment}"
    detail: dict[str, Any] = {"policy": policy.label}
    freeze = rules.active_freeze(policy, now) if rollback_of is None else None
    if freeze is not None:
        if not req.freeze_override:
            raise refusal(
                policy,
                freeze,
                doing,
                "wait for the freeze to end; an admin may deploy anyway with "
                '"freeze_override": true (audited)',
            )
        if principal.role is not Role.ADMIN:
            raise refusal(
                policy,
                freeze,
                doing,
                f"overriding a freeze needs the admin role; key {principal.name!r} has "
                f"{principal.role.value}",
            )
        detail["freeze_overridden"] = freeze.rule
    if rollback_of is None:
        violation = rules.strategy_violation(policy, req)
        if violation is not None:
            raise refusal(policy, violation, doing, "change the strategy to what the policy allows")
    context = rules.deployment_context(
        req, principal.initiator, principal.role.value, now, rollback_of
    )
    broken = rules.broken_rule(policy.rules, context)
    if broken is not None:
        raise refusal(
            policy, broken, doing, f"GET /api/v1/policies/{policy.environment} shows the rule"
        )
    return detail


# ----------------------------------------------------------------------------- configuration


async def enforce_config_change(
    session: AsyncSession,
    principal: Principal,
    environment: str | None,
    *,
    override: bool = False,
    key: str | None = None,
    component: str | None = None,
    rolled_out: bool = False,
) -> None:
    """Refuse (403) a configuration change a policy forbids: inside a freeze window, by an
    operator in a protected environment, a direct change where changes need approval, or one a
    CEL rule forbids. `environment` None (a global or component-wide entry) reaches every
    environment: every policy is checked. An admin's `override` passes freezes and the need
    for approval; it is recorded as an audit event in the session, committed with the change
    (so it exists exactly when the change does). A change `rolled_out` at once does not need
    the approval beforehand: its roll-out waits for it (`planned_deployment`)."""
    if environment is None:
        found = await store.list_all(session)
    else:
        one = await store.find(session, environment)
        found = [one] if one is not None else []
    now = _now()
    overridden: list[str] = []
    for policy in found:
        overridden += _check_config(policy, principal, now, override, key, component, rolled_out)
    if overridden:
        await audit_store.record(
            session,
            actor=principal.initiator,
            action=OVERRIDDEN,
            target=key or environment or "*",
            detail={"kind": "config", "policies": overridden},
            request_id=request_id_var.get(),
        )


def _check_config(
    policy: Policy,
    principal: Principal,
    now: datetime,
    override: bool,
    key: str | None,
    component: str | None,
    rolled_out: bool = False,
) -> list[str]:
    """Refuse the change or answer which of the policy's rules an admin overrode."""
    doing = f"changing configuration in {policy.environment}"
    admin_override = override and principal.role is Role.ADMIN
    overridden: list[str] = []
    freeze = rules.active_freeze(policy, now)
    if freeze is not None:
        if not admin_override:
            raise refusal(
                policy,
                freeze,
                doing,
                "wait for the freeze to end; an admin may change it anyway with the override "
                "(audited)",
            )
        overridden.append(f"{policy.label}: {freeze.rule}")
    if policy.protected and not principal.role.allows(Role.ADMIN):
        raise refusal(
            policy,
            rules.Violation("protected", f"{policy.environment} is protected"),
            doing,
            "only admins write configuration in a protected environment",
        )
    if policy.config_changes_need_approval and not rolled_out:
        if not admin_override:
            raise refusal(
                policy,
                rules.Violation(
                    "config_changes_need_approval", "configuration changes need an approval"
                ),
                doing,
                "roll the change out as a deployment, which waits for the required approval, "
                "or have an admin apply it with the override (audited)",
            )
        overridden.append(f"{policy.label}: config_changes_need_approval")
    context = rules.config_context(
        policy.environment,
        principal.initiator,
        principal.role.value,
        now,
        key=key,
        component=component,
    )
    broken = rules.broken_rule(policy.rules, context)
    if broken is not None:
        raise refusal(
            policy, broken, doing, f"GET /api/v1/policies/{policy.environment} shows the rule"
        )
    return overridden
