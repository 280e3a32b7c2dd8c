"""The configuration policy gate of a pipeline stage, on the time-skipping server: a freeze
window is waited out with a durable timer (shown as `waiting_on: policy` with the freeze),
a rule that waiting will not change fails the stage before anything moves; and the freeze's
end as the gate computes it from a policy (one-off and weekly windows, chained)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.pipeline_policy import MAX_FREEZE_WAIT, PolicyGate, freeze_end, policy_gate
from core.db import policies as policy_store
from core.db.engine import make_engine, sessions
from core.db.migrate import upgrade
from core.models.pipelines import CHECK_GATES_ACTIVITY, GateAnswer, GateCheck, RunState, StageState
from core.models.policies import PolicySpec
from core.settings import Settings
from tests.unit.test_pipeline_workflow import Run, Store, stage, waiting


@dataclass
class PolicyStore(Store):
    """The fake store, with a policy per environment: frozen until a time, or refusing."""

    frozen_until: dict[str, datetime] = field(default_factory=dict)
    refusing: dict[str, str] = field(default_factory=dict)
    checked: list[GateCheck] = field(default_factory=list)

    def activities(self) -> list[Callable[..., Any]]:
        others = [a for a in super().activities() if a.__name__ != "check_gates"]
        plain = next(a for a in super().activities() if a.__name__ == "check_gates")

        @activity.defn(name=CHECK_GATES_ACTIVITY)
        async def check_gates(req: GateCheck) -> GateAnswer:
            self.checked.append(req)
            answer: GateAnswer = await plain(req)
            until = self.frozen_until.get(req.environment)
            if until is not None and req.now < until:
                answer.policy_frozen = f"policy {req.environment}.v1: frozen (release week)"
                answer.policy_until = until
            answer.policy_refusal = self.refusing.get(req.environment)
            return answer

        return [check_gates, *others]


async def test_a_freeze_is_waited_out_and_a_rule_fails_the_stage_before_anything_moves(
    env: WorkflowEnvironment,
) -> None:
    r = Run(env, store=PolicyStore())
    store = r.store
    assert isinstance(store, PolicyStore)
    stages = [
        {"environment": "dev", "auto_promote": True},
        {"environment": "staging", "auto_promote": True},
        {"environment": "production", "auto_promote": True},
    ]
    ends = (await env.get_current_time()) + timedelta(hours=3)
    store.frozen_until["staging"] = ends
    store.refusing["production"] = "policy production.v2 forbids deploying api: rule x"
    async with r.worker():
        handle = await r.start(stages)
        status = await r.until(handle, waiting("staging", "policy"))
        frozen = stage(status, "staging")
        assert "frozen (release week)" in (frozen.why or "")
        assert frozen.until == ends
        assert [e for e, _ in store.released] == ["dev"]
        result = await handle.result()
    # The freeze ended: staging released after it, with a durable timer, not before.
    staging = stage(result, "staging")
    assert staging.state is StageState.VERIFIED
    assert staging.released_at is not None and staging.released_at >= ends
    # The rule will not change by waiting: production fails, nothing was released there.
    production = stage(result, "production")
    assert production.state is StageState.FAILED
    assert production.waiting_on == "policy"
    assert "rule x" in (production.reason or "")
    assert [e for e, _ in store.released] == ["dev", "staging"]
    assert result.state is RunState.FAILED
    # The gate is asked about the stage's own release (whose deployments the policy checks).
    assert all(c.release_id and c.release_id.startswith("rel-") for c in store.checked)


def test_the_freeze_end_covers_one_off_weekly_and_chained_windows() -> None:
    monday_noon = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert freeze_end(PolicySpec(), monday_noon) is None
    one_off = PolicySpec.model_validate(
        {
            "freeze_windows": [
                {"start": "2026-01-05T10:00:00Z", "end": "2026-01-05T14:00:00Z"},
                # Begins before the first ends: the freeze lasts until this one's end.
                {"start": "2026-01-05T13:00:00Z", "end": "2026-01-06T09:00:00Z"},
            ]
        }
    )
    assert freeze_end(one_off, monday_noon) == datetime(2026, 1, 6, 9, 0, tzinfo=UTC)
    overnight = PolicySpec.model_validate(
        {"weekly_freeze_windows": [{"days": ["sun"], "start": "18:00", "end": "13:00"}]}
    )
    # Sunday 18:00 runs past midnight to Monday 13:00.
    assert freeze_end(overnight, monday_noon) == datetime(2026, 1, 5, 13, 0, tzinfo=UTC)
    assert freeze_end(overnight, monday_noon + timedelta(hours=2)) is None


async def test_the_gate_reads_the_environment_s_policy_as_a_deployment_start_would(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "home", postgres_url=None)
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    combo = {"api": "v2", "web": "v5"}

    def freeze(end: str) -> PolicySpec:
        window = {"start": "2026-01-05T00:00:00Z", "end": end, "reason": "release week"}
        return PolicySpec.model_validate({"freeze_windows": [window]})

    try:
        async with sessions(engine)() as session:
            assert await policy_gate(session, "dev", combo, "rel-x", now) == PolicyGate()
            await policy_store.put(session, "dev", freeze("2026-01-06T00:00:00Z"), "apikey:a")
            gate = await policy_gate(session, "dev", combo, "rel-x", now)
            assert gate.until == datetime(2026, 1, 6, tzinfo=UTC) and gate.refusal is None
            assert "release week" in (gate.frozen or "") and "dev v" in (gate.frozen or "")
            # Longer than a stage waits for: refused at once.
            await policy_store.put(session, "dev", freeze("2026-02-05T00:00:00Z"), "apikey:a")
            gate = await policy_gate(session, "dev", combo, "rel-x", now)
            assert gate.frozen is None
            assert f"beyond the {MAX_FREEZE_WAIT.days} days" in (gate.refusal or "")
            # A rule that waiting will not change: the deployment's own refusal, word for word.
            allowed = PolicySpec.model_validate({"allowed_strategies": ["canary"]})
            await policy_store.put(session, "dev", allowed, "apikey:a")
            gate = await policy_gate(session, "dev", combo, "rel-x", now)
            assert gate.frozen is None
            assert "deploying api to dev: rule allowed_strategies" in (gate.refusal or "")
    finally:
        await engine.dispose()
