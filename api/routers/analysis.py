"""`POST /api/v1/analysis/replay`: what a judge configuration would have decided on a past
deployment's recorded data (docs/judge-replay.md). Nothing is deployed or changed.

The judge is pure and deterministic, so replaying a deployment's recordings with the
configuration it ran with gives back its recorded verdicts; another configuration shows what
tuning it would change. The judgements are CPU work (up to about 0.1 s a metric at 10,000
samples a side): they run in a thread, a replay judges at most MAX_REPLAYED recordings and
MAX_REPLAYED_SAMPLES samples (the newest first; the answer says when it stopped short), and an
API process runs at most MAX_CONCURRENT_REPLAYS at once (429 beyond).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Viewer
from api.deps import SessionDep
from api.openapi import errors
from api.scope_checks import check
from core.db import deployments as deployment_store
from core.db import policies as policy_store
from core.db.judgements import SqlJudgementStore
from core.errors import NotFoundError, RateLimitedError
from core.judge.data import ErrorData
from core.judge.recording import StoredJudgement, data_for
from core.judge.result import JudgeResult, Verdict
from core.judge.spec import JudgeSpec, VerdictAction, VerdictPolicy
from core.models.apikeys import Role

router = APIRouter(prefix="/api/v1/analysis", tags=["analysis"])

# The newest recordings of a deployment a replay judges (a deployment has one per judge metric
# and place of its analysis: a few dozen at most in practice).
MAX_REPLAYED = 200
# Samples fed to the judge per replay, all metrics together (about 10 s of one core at worst).
MAX_REPLAYED_SAMPLES = 2_000_000
MAX_CONCURRENT_REPLAYS = 2
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class ReplayRequest(BaseModel):
    """A judge configuration to run against a past deployment's recorded data."""

    model_config = ConfigDict(extra="forbid")

    deployment_id: str = Field(..., min_length=1, max_length=64)
    judge: JudgeSpec = Field(
        ..., description="a judge metric's configuration: metrics, thresholds, on_verdict, ..."
    )
    metric: str | None = Field(
        None,
        pattern=METRIC_PATTERN,
        description="only the recordings of this analysis metric (default: all of them)",
    )


class Recorded(BaseModel):
    """What the deployment's analysis decided at the time."""

    verdict: Verdict
    score: float


class ReplayedJudgement(BaseModel):
    """One recording judged again."""

    metric: str = Field(..., description="the analysis metric that recorded it")
    where: str = Field(..., description="where in the analysis, e.g. `at step 3`")
    at: datetime
    recorded: Recorded
    replayed: JudgeResult
    action: VerdictAction = Field(..., description="what the replayed verdict would make it do")
    changed: bool = Field(..., description="whether the replayed verdict differs from the recorded")


class ReplayAnswer(BaseModel):
    """What the configuration would have decided, recording by recording (oldest first)."""

    deployment_id: str
    component: str
    environment: str
    version: str
    actions_from: Literal["judge", "policy"] = Field(
        ...,
        description="judge: the configuration's on_verdict; policy: the environment policy's"
        " judge_verdicts, which wins over it, as for deployments",
    )
    policy: str | None = Field(None, description="the policy whose judge_verdicts applied")
    judgements: list[ReplayedJudgement]
    recorded: int = Field(..., description="recordings of the deployment (of `metric`)")
    cut: str | None = Field(None, description="why fewer than all recordings were replayed")


def _samples(spec: JudgeSpec, judgement: StoredJudgement) -> int:
    """What judging this recording costs: the samples fed to the judge (errors: two counts)."""
    total = 0
    for data in data_for(spec, judgement.recording).values():
        total += 2 if isinstance(data, ErrorData) else len(data.baseline) + len(data.canary)
    return total


async def _within_budget(
    spec: JudgeSpec, newest_first: AsyncIterator[StoredJudgement]
) -> list[StoredJudgement]:
    """The newest recordings whose samples fit MAX_REPLAYED_SAMPLES, oldest first. Read one at
    a time, so what is held never goes much beyond the budget."""
    kept: list[StoredJudgement] = []
    spent = 0
    async for judgement in newest_first:
        spent += _samples(spec, judgement)
        if spent > MAX_REPLAYED_SAMPLES and kept:
            break
        kept.append(judgement)
    kept.reverse()
    return kept


def _judge_all(spec: JudgeSpec, judgements: list[StoredJudgement]) -> list[JudgeResult]:
    # Imported here: the API does not import scipy until a replay needs it.
    from core.judge.judge import judge
    from core.judge.recording import request_for

    return [judge(request_for(spec, j.recording)) for j in judgements]


def _slots(request: Request) -> list[int]:
    state = request.app.state
    if not hasattr(state, "replays_running"):
        state.replays_running = [0]
    running: list[int] = state.replays_running
    return running


@router.post(
    "/replay",
    response_model=ReplayAnswer,
    responses=errors(404),
)
async def replay(
    body: ReplayRequest, principal: Viewer, session: SessionDep, request: Request
) -> ReplayAnswer:
    """Judge a past deployment's recorded data again with the configuration given, and say
    what each judgement would have decided and done; nothing is deployed or changed. 404 for
    an unknown deployment, or one without recordings (only analyses with a judge metric record
    their samples); 422 for an invalid configuration, each field named; 429 while this API
    process already runs its replays. At most 200 recordings (the newest) are judged."""
    row = await deployment_store.find(session, body.deployment_id)
    if row is None:
        raise NotFoundError(
            f"deployment {body.deployment_id} not found",
            hint="GET /api/v1/deployments lists them",
        )
    check(principal, Role.VIEWER, row.component, row.environment)
    policy = await policy_store.find(session, row.environment)
    await session.close()  # the store's reads below use their own sessions

    store = SqlJudgementStore(request.app.state.sessions)
    total = await store.count_of_deployment(row.id, metric=body.metric)
    if total == 0:
        raise _nothing_recorded(row.id, body.metric, await store.metrics_of_deployment(row.id))
    slots = _slots(request)
    if slots[0] >= MAX_CONCURRENT_REPLAYS:
        raise RateLimitedError(
            f"this API process already runs {slots[0]} replays",
            retry_after=5,
            hint="retry in a few seconds, or on another replica",
        )
    slots[0] += 1
    try:
        chosen = await _within_budget(
            body.judge,
            store.newest_of_deployment(row.id, metric=body.metric, newest=MAX_REPLAYED),
        )
        work = asyncio.ensure_future(asyncio.to_thread(_judge_all, body.judge, chosen))
    except BaseException:
        slots[0] -= 1
        raise
    # The slot is free when the judging ends, not when the request does: a thread cannot be
    # cancelled, so a caller that hangs up and asks again must not start more of them.
    work.add_done_callback(lambda _: slots.__setitem__(0, slots[0] - 1))
    results = await asyncio.shield(work)

    # The environment's mapping wins over the configuration's, as it does for deployments.
    by_policy = policy is not None and policy.judge_verdicts is not None
    verdicts: VerdictPolicy = body.judge.on_verdict
    if policy is not None and policy.judge_verdicts is not None:
        verdicts = policy.judge_verdicts
    return ReplayAnswer(
        deployment_id=row.id,
        component=row.component,
        environment=row.environment,
        version=row.version,
        actions_from="policy" if by_policy else "judge",
        policy=policy.label if by_policy and policy is not None else None,
        judgements=[
            ReplayedJudgement(
                metric=j.metric,
                where=j.where,
                at=j.at,
                recorded=Recorded(verdict=j.result.verdict, score=j.result.score),
                replayed=result,
                action=verdicts.action(result.verdict),
                changed=result.verdict != j.result.verdict,
            )
            for j, result in zip(chosen, results, strict=True)
        ],
        recorded=total,
        cut=_cut(total, len(chosen)),
    )


def _cut(total: int, replayed: int) -> str | None:
    if replayed == total:
        return None
    return (
        f"replayed the newest {replayed} of {total} recordings: a replay judges at most"
        f" {MAX_REPLAYED} recordings and {MAX_REPLAYED_SAMPLES:,} samples; name one `metric`"
        " to replay fewer"
    )


def _nothing_recorded(deployment_id: str, metric: str | None, metrics: list[str]) -> NotFoundError:
    if metric is not None and metrics:
        return NotFoundError(
            f"deployment {deployment_id} has no recording of analysis metric {metric}",
            hint=f"its recordings are of: {', '.join(metrics)}",
        )
    return NotFoundError(
        f"deployment {deployment_id} has no recorded judgement",
        hint="only analyses with a judge metric record their samples; replay a deployment"
        " whose analysis had one",
    )
