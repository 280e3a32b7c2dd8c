"""`POST /api/v1/analysis/replay` through the real API: recordings seeded with the real store,
judged again with a stricter and a looser configuration; the environment policy's verdict
mapping; the refusals (404, 422, 403); and the curl example of docs/judge-replay.md."""

from __future__ import annotations

import json
import random
import re
import shlex
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.routers import analysis
from core.db.judgements import SqlJudgementStore
from core.judge import JudgeConfig
from core.judge.judge import judge
from core.judge.recording import NewJudgement, Recording, request_for
from tests.integration.deploying import ended_deployment_row
from tests.integration.system import System
from tests.integration.test_judgement_store import recording_of

pytestmark = pytest.mark.store  # also run on PostgreSQL (tests/conftest.py)

DOC = Path(__file__).resolve().parents[2] / "docs" / "judge-replay.md"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# What the deployments' analyses ran with: latency at the default 10% tolerance, errors.
RECORDED_WITH: dict[str, Any] = {
    "metrics": [
        {"name": "latency", "kind": "latency", "weight": 1},
        {"name": "errors", "kind": "errors", "weight": 4},
    ]
}


def _latency(scale: float, n: int, seed: int) -> list[float]:
    """Like the demo component behind the router: about 20 ms, lognormal jitter (p95 30 ms)."""
    draw = random.Random(seed)
    return [0.02 * scale * draw.lognormvariate(0, 0.25) for _ in range(n)]


def _judge_config(**latency: Any) -> dict[str, Any]:
    metrics = [dict(RECORDED_WITH["metrics"][0], **latency), RECORDED_WITH["metrics"][1]]
    return {"metrics": metrics}


@pytest.fixture
async def system(make_system: Callable[..., Any]) -> System:
    built: System = await make_system(worker=False)
    return built


async def _deployment(
    system: System, deployment_id: str, environment: str = "staging", component: str = "demo"
) -> None:
    app = system.http._transport.app  # type: ignore[attr-defined]
    async with app.state.sessions() as session:
        session.add(ended_deployment_row(deployment_id, component, environment, "v2", "canary"))
        await session.commit()


async def _record(
    system: System,
    deployment_id: str,
    recordings: list[Recording],
    *,
    metric: str = "judge",
    environment: str = "staging",
) -> list[str]:
    """Judge each recording as its analysis did (RECORDED_WITH) and keep it, step by step;
    the recorded verdicts, in order."""
    app = system.http._transport.app  # type: ignore[attr-defined]
    store = SqlJudgementStore(app.state.sessions)
    config = JudgeConfig.model_validate(RECORDED_WITH)
    verdicts: list[str] = []
    for step, recording in enumerate(recordings, start=1):
        result = judge(request_for(config, recording))
        verdicts.append(result.verdict)
        await store.save(
            NewJudgement(
                deployment_id=deployment_id,
                component="demo",
                environment=environment,
                version="v2",
                metric=metric,
                where=f"at step {step}",
                at=T0 + timedelta(minutes=step),
                result=result,
                recording=recording,
            )
        )
    return verdicts


def _canary(slower: float, seed: int, errors: int = 0) -> Recording:
    """A canary at 20%: 800 requests of the stable version, 200 of the new one."""
    return recording_of(
        _latency(1.0, 800, seed),
        _latency(1.0 + slower, 200, seed + 1),
        errors=(800, 0, 200, errors),
    )


async def _audit_events(system: System) -> int:
    resp = await system.http.get("/api/v1/audit?limit=1000", headers=system.auth())
    assert resp.status_code == 200, resp.text
    return len(resp.json())


async def _replay(system: System, key: str | None = None, **body: Any) -> Any:
    return await system.http.post("/api/v1/analysis/replay", json=body, headers=system.auth(key))


async def test_a_looser_configuration_would_have_passed_what_a_stricter_one_fails(
    system: System,
) -> None:
    await _deployment(system, "dep-tuned")
    # Step 1 as fast as the stable version; step 2 20% slower, step 3 35% slower.
    recorded = await _record(
        system, "dep-tuned", [_canary(0.0, 1), _canary(0.2, 3), _canary(0.35, 5)]
    )
    # Latency fails at steps 2 and 3 (weight 1 of 5): warnings, at score 80.
    assert recorded == ["pass", "warning", "warning"]
    viewer = await system.key("viewer")
    audited = await _audit_events(system)

    same = await _replay(system, viewer, deployment_id="dep-tuned", judge=RECORDED_WITH)
    assert same.status_code == 200, same.text
    answer = same.json()
    assert answer["actions_from"] == "judge" and answer["policy"] is None
    assert answer["recorded"] == 3 and answer["cut"] is None
    rows = answer["judgements"]
    assert [(j["where"], j["recorded"]["verdict"]) for j in rows] == [
        ("at step 1", "pass"),
        ("at step 2", "warning"),
        ("at step 3", "warning"),
    ]
    # The judge is deterministic: the configuration it ran with decides the same again.
    assert [j["replayed"]["verdict"] for j in rows] == recorded
    assert [j["replayed"]["score"] for j in rows] == [j["recorded"]["score"] for j in rows]
    assert [j["changed"] for j in rows] == [False, False, False]
    assert [j["action"] for j in rows] == ["continue", "approval", "approval"]

    # Latency critical and at most 5% slower: both slow steps fail and would roll back.
    stricter = _judge_config(tolerance=0.05, critical=True)
    strict = (await _replay(system, viewer, deployment_id="dep-tuned", judge=stricter)).json()
    assert [j["replayed"]["verdict"] for j in strict["judgements"]] == ["pass", "fail", "fail"]
    assert [j["action"] for j in strict["judgements"]] == ["continue", "rollback", "rollback"]
    assert [j["changed"] for j in strict["judgements"]] == [False, True, True]
    assert "critical metric latency fails" in strict["judgements"][1]["replayed"]["reason"]

    # 50% slower tolerated, warnings continuing: nothing would have stopped it.
    looser = {**_judge_config(tolerance=0.5), "on_verdict": {"warning": "continue"}}
    loose = (await _replay(system, viewer, deployment_id="dep-tuned", judge=looser)).json()
    assert [j["replayed"]["verdict"] for j in loose["judgements"]] == ["pass", "pass", "pass"]
    assert [j["changed"] for j in loose["judgements"]] == [False, True, True]
    assert [j["action"] for j in loose["judgements"]] == ["continue"] * 3
    latency = loose["judgements"][2]["replayed"]["metrics"][0]
    assert latency["metric"] == "latency" and latency["verdict"] == "pass"
    assert latency["reason"].endswith("no significant change beyond the 50% tolerance")

    # Only one analysis metric's recordings.
    await _record(system, "dep-tuned", [_canary(0.0, 9)], metric="judge_errors")
    one = await _replay(system, deployment_id="dep-tuned", judge=RECORDED_WITH, metric="judge")
    assert [j["metric"] for j in one.json()["judgements"]] == ["judge"] * 3
    both = await _replay(system, deployment_id="dep-tuned", judge=RECORDED_WITH)
    assert both.json()["recorded"] == 4
    # A replay changes nothing: no audit event, and the recorded verdicts are as they were.
    assert await _audit_events(system) == audited
    again = (
        await _replay(system, deployment_id="dep-tuned", judge=stricter, metric="judge")
    ).json()
    assert [j["recorded"]["verdict"] for j in again["judgements"]] == recorded


async def test_the_environment_policy_maps_the_verdicts_as_it_does_for_deployments(
    system: System,
) -> None:
    await _deployment(system, "dep-policy", environment="production")
    await _record(system, "dep-policy", [_canary(0.35, 11)], environment="production")
    continuing = {**RECORDED_WITH, "on_verdict": {"warning": "continue"}}

    before = (await _replay(system, deployment_id="dep-policy", judge=continuing)).json()
    assert (before["actions_from"], before["judgements"][0]["action"]) == ("judge", "continue")

    put = await system.http.put(
        "/api/v1/policies/production",
        json={"judge_verdicts": {"warning": "rollback"}},
        headers=system.auth(),
    )
    assert put.status_code in (200, 201), put.text
    after = (await _replay(system, deployment_id="dep-policy", judge=continuing)).json()
    assert after["actions_from"] == "policy" and after["policy"] == "production v1"
    assert after["judgements"][0]["replayed"]["verdict"] == "warning"
    assert after["judgements"][0]["action"] == "rollback"


async def test_unknown_deployments_and_deployments_without_recordings_are_404(
    system: System,
) -> None:
    unknown = await _replay(system, deployment_id="nothing-here", judge=RECORDED_WITH)
    assert unknown.status_code == 404 and "nothing-here not found" in unknown.text

    await _deployment(system, "dep-plain")
    plain = await _replay(system, deployment_id="dep-plain", judge=RECORDED_WITH)
    assert plain.status_code == 404, plain.text
    error = plain.json()["error"]
    assert "no recorded judgement" in error["message"]
    assert "only analyses with a judge metric record their samples" in error["hint"]

    await _record(system, "dep-plain", [_canary(0.0, 13)])
    other = await _replay(system, deployment_id="dep-plain", judge=RECORDED_WITH, metric="slo")
    assert other.status_code == 404
    assert other.json()["error"]["hint"] == "its recordings are of: judge"


@pytest.mark.parametrize(
    ("judge_config", "field"),
    [
        ({"metrics": []}, "body.judge.metrics"),
        ({"metrics": [{"name": "latency", "kind": "latency", "speed": 1}]}, "speed"),
        (
            {**RECORDED_WITH, "thresholds": {"pass": 50, "warning": 90}},
            "body.judge.thresholds",
        ),
        ({**RECORDED_WITH, "baseline_window": "2h"}, "body.judge"),
        ({**RECORDED_WITH, "on_verdict": {"fail": "continue"}}, "body.judge.on_verdict.fail"),
        (
            {"metrics": [{"name": "latency", "kind": "latency", "confidence": 2}]},
            "confidence",
        ),
    ],
)
async def test_an_invalid_configuration_is_422_with_the_field_named(
    system: System, judge_config: dict[str, Any], field: str
) -> None:
    await _deployment(system, "dep-invalid")
    resp = await _replay(system, deployment_id="dep-invalid", judge=judge_config)
    assert resp.status_code == 422, resp.text
    fields = [f["field"] for f in resp.json()["error"]["fields"]]
    assert any(field in f for f in fields), fields


async def test_a_key_scoped_elsewhere_may_not_replay_the_deployment(system: System) -> None:
    await _deployment(system, "dep-scoped")
    await _record(system, "dep-scoped", [_canary(0.0, 15)])
    made = await system.http.post(
        "/api/v1/apikeys",
        json={
            "name": "prod-viewer",
            "role": "viewer",
            "scopes": [{"components": ["demo"], "environments": ["production"]}],
            "read_everything": False,
        },
        headers=system.auth(),
    )
    assert made.status_code == 201, made.text
    refused = await _replay(
        system, made.json()["key"], deployment_id="dep-scoped", judge=RECORDED_WITH
    )
    assert refused.status_code == 403 and "out of the scope" in refused.text
    assert (
        await _replay(system, deployment_id="dep-scoped", judge=RECORDED_WITH)
    ).status_code == 200


async def test_the_curl_example_of_the_documentation_answers_as_documented(
    system: System,
) -> None:
    text = DOC.read_text()
    block = re.search(r"```sh\n(curl .*?)\n```", text, re.S)
    assert block is not None, "docs/judge-replay.md has no curl example"
    argv = shlex.split(block.group(1).replace("\\\n", " "))
    body = json.loads(argv[argv.index("-d") + 1])
    url = next(a for a in argv if "/api/v1/" in a)
    assert argv[argv.index("-X") + 1] == "POST" and url.endswith("/api/v1/analysis/replay")
    assert "Authorization: Bearer $R2C_KEY" in argv

    await _deployment(system, body["deployment_id"])
    await _record(system, body["deployment_id"], [_canary(0.0, 21), _canary(0.35, 23)])
    resp = await system.http.post("/api/v1/analysis/replay", json=body, headers=system.auth())
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    # The documented answer's shape and its verdicts.
    found = re.search(r"```json\n(\{.*?)\n```", text, re.S)
    assert found is not None, "docs/judge-replay.md shows no answer"
    documented = json.loads(found.group(1))
    assert set(answer) == set(documented)
    assert set(answer["judgements"][0]) == set(documented["judgements"][0])

    def decisions(judgements: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (j["where"], j["recorded"], j["replayed"]["verdict"], j["action"], j["changed"])
            for j in judgements
        ]

    assert decisions(answer["judgements"]) == decisions(documented["judgements"])
    assert [j["replayed"]["reason"] for j in answer["judgements"]] == [
        j["replayed"]["reason"] for j in documented["judgements"]
    ]


async def test_a_replay_is_bounded_and_says_so(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _deployment(system, "dep-bounded")
    await _record(system, "dep-bounded", [_canary(0.0, 31), _canary(0.0, 33), _canary(0.35, 35)])
    # Each recording feeds the judge 1,000 latencies and two counts: room for the newest one.
    monkeypatch.setattr(analysis, "MAX_REPLAYED_SAMPLES", 1500)
    answer = (await _replay(system, deployment_id="dep-bounded", judge=RECORDED_WITH)).json()
    assert [j["where"] for j in answer["judgements"]] == ["at step 3"]
    assert answer["recorded"] == 3
    assert answer["cut"].startswith("replayed the newest 1 of 3 recordings")

    # Two replays already running in this API process: the third waits its turn.
    app = system.http._transport.app  # type: ignore[attr-defined]
    monkeypatch.setattr(app.state, "replays_running", [analysis.MAX_CONCURRENT_REPLAYS], False)
    busy = await _replay(system, deployment_id="dep-bounded", judge=RECORDED_WITH)
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
