"""Deployments end to end in one process: the real API, a real worker, real instances and
routers, and real traffic from the load generator."""

from __future__ import annotations

import asyncio

import pytest

from cli.load import LoadReport, run_load
from tests.integration.deploying import (
    FINAL,
    deploy,
    deployed_under_load,
    deployed_with_traffic,
    first_version,
    get,
    instance_count,
    register_demo,
    until,
    versions,
)
from tests.integration.system import System
from tests.support import wait_for


@pytest.fixture
async def demo(system: System) -> System:
    return await register_demo(system)


async def test_first_deployment_then_canary_to_completion(demo: System) -> None:
    endpoint = await first_version(demo)
    assert await versions(endpoint) == {"v1"}
    strategy = {
        "type": "canary",
        "steps": [{"set_weight": 20}, {"pause": {"duration": "1s"}}, {"set_weight": 60}],
    }
    load = asyncio.create_task(run_load(endpoint + "/", rps=80, duration=6))
    started = await deploy(demo, "v2", strategy)
    done = await until(demo, started["id"], *FINAL)
    report: LoadReport = await load
    assert done["state"] == "succeeded", done["reason"]
    assert done["status"]["previous_version"] == "v1"
    assert report.failed == 0, report.errors
    assert await versions(endpoint) == {"v2"}
    assert instance_count(demo) == 2
    revisions = await demo.http.get(
        "/api/v1/deployments/revisions?component=demo&environment=dev", headers=demo.auth()
    )
    assert [r["version"] for r in revisions.json()] == ["v2", "v1"]


async def test_a_bad_canary_rolls_back_by_itself(demo: System) -> None:
    endpoint = await first_version(demo)
    strategy = {
        "type": "canary",
        "steps": [
            {"set_weight": 50},
            {
                "analysis": {
                    "metrics": [
                        {
                            "name": "error_rate",
                            "failure_condition": "result > 0.05",
                            "initial_delay": "1s",
                            "interval": "1s",
                            "count": 2,
                        }
                    ]
                }
            },
            {"set_weight": 100},
        ],
    }
    done = await deployed_under_load(demo, endpoint, "v2", strategy, env={"DEMO_ERROR_RATE": "0.5"})
    assert done["state"] == "rolled_back", done
    assert "error_rate" in done["reason"] and "> 0.05" in done["reason"]
    assert "at step 2, measurement 1 of 2" in done["reason"], done["status"]["measurements"]
    assert await versions(endpoint) == {"v1"}
    assert instance_count(demo) == 2


async def test_blue_green_switch_loses_no_request(demo: System) -> None:
    endpoint = await first_version(demo)
    strategy = {"type": "blue_green", "scale_down_delay_seconds": 1}
    done, traffic = await deployed_with_traffic(demo, endpoint, "v2", strategy, rps=100)
    assert done["state"] == "succeeded", done["reason"]
    assert traffic.failed == 0, traffic.errors
    assert traffic.by_version["v1"] > 0 and traffic.by_version["v2"] > 0, traffic.by_version
    assert await versions(endpoint) == {"v2"}


async def test_rolling_update_loses_no_request(demo: System) -> None:
    endpoint = await first_version(demo)
    strategy = {"type": "rolling", "max_surge": 1}
    done, traffic = await deployed_with_traffic(demo, endpoint, "v2", strategy, rps=100)
    assert done["state"] == "succeeded", done["reason"]
    assert traffic.failed == 0, traffic.errors
    assert traffic.by_version["v1"] > 0 and traffic.by_version["v2"] > 0, traffic.by_version
    assert await versions(endpoint) == {"v2"}
    assert instance_count(demo) == 2


async def test_abort_and_cancel_compensate_to_stable(demo: System) -> None:
    endpoint = await first_version(demo)
    paused = {"type": "canary", "steps": [{"set_weight": 30}, {"pause": {}}, {"set_weight": 100}]}
    started = await deploy(demo, "v2", paused)
    await until(demo, started["id"], "paused")
    busy = await demo.http.post(
        "/api/v1/deployments",
        json={"component": "demo", "environment": "dev", "version": "v3"},
        headers=demo.auth(),
    )
    assert busy.status_code == 409 and started["id"] in busy.json()["error"]["message"]
    assert (await versions(endpoint, 30)) == {"v1", "v2"}
    resume = await demo.http.post(
        f"/api/v1/deployments/{started['id']}/resume", headers=demo.auth()
    )
    assert resume.status_code == 409 and "promote" in resume.json()["error"]["message"]
    abort = await demo.http.post(
        f"/api/v1/deployments/{started['id']}/abort", json={"reason": "test"}, headers=demo.auth()
    )
    assert abort.status_code == 200, abort.text
    done = await until(demo, started["id"], *FINAL)
    assert done["state"] == "aborted" and "test" in done["reason"]
    assert await versions(endpoint) == {"v1"}
    assert instance_count(demo) == 2

    # The same through a cancellation (the orchestration API's DELETE, or the Temporal UI).
    again = await deploy(demo, "v2", paused)
    await until(demo, again["id"], "paused")
    cancel = await demo.http.delete(
        "/api/v1/orchestration/workflows/deploy:demo:dev", headers=demo.auth()
    )
    assert cancel.status_code == 202
    done = await until(demo, again["id"], *FINAL)
    assert done["state"] == "aborted" and "cancel" in done["reason"]
    assert await versions(endpoint) == {"v1"}
    assert instance_count(demo) == 2


async def test_promote_then_rollback_by_the_fast_path(demo: System) -> None:
    endpoint = await first_version(demo)
    paused = {"type": "canary", "steps": [{"set_weight": 10}, {"pause": {}}, {"set_weight": 50}]}
    started = await deploy(demo, "v2", paused)
    await until(demo, started["id"], "paused")
    promoted = await demo.http.post(
        f"/api/v1/deployments/{started['id']}/promote", json={"full": True}, headers=demo.auth()
    )
    assert promoted.status_code == 200, promoted.text
    done = await until(demo, started["id"], *FINAL)
    assert done["state"] == "succeeded"
    assert await versions(endpoint) == {"v2"}
    back = await demo.http.post(
        f"/api/v1/deployments/{started['id']}/rollback", headers=demo.auth()
    )
    assert back.status_code == 202, back.text
    rolled = await until(demo, back.json()["id"], *FINAL)
    assert rolled["state"] == "succeeded" and rolled["version"] == "v1"
    assert rolled["rollback_of"] == started["id"]
    assert await versions(endpoint) == {"v1"}


async def test_invalid_requests_are_422_with_the_field(demo: System) -> None:
    cases = [
        (
            {"version": "v2", "strategy": {"type": "canary", "steps": []}},
            "body.strategy.canary.steps",
        ),
        ({"version": "v 2"}, "body.version"),
        ({"version": "v2", "strategy": {"type": "teleport"}}, "body.strategy"),
        (
            {
                "version": "v2",
                "strategy": {
                    "type": "canary",
                    "steps": [
                        {
                            "analysis": {
                                "metrics": [
                                    {"name": "error_rate", "failure_condition": "reslt > 1"}
                                ]
                            }
                        }
                    ],
                },
            },
            "body.strategy.canary.steps.0.AnalysisStep.analysis.metrics.0.failure_condition",
        ),
    ]
    for body, field in cases:
        resp = await demo.http.post(
            "/api/v1/deployments",
            json={"component": "demo", "environment": "dev", **body},
            headers=demo.auth(),
        )
        assert resp.status_code == 422, (field, resp.text)
        fields = [f["field"] for f in resp.json()["error"]["fields"]]
        assert any(f.startswith(field) for f in fields), (field, fields)
    unknown = await demo.http.post(
        "/api/v1/deployments",
        json={"component": "nope", "environment": "dev", "version": "v1"},
        headers=demo.auth(),
    )
    assert unknown.status_code == 422
    listed = await demo.http.get("/api/v1/deployments", headers=demo.auth())
    assert listed.json()["total"] == 0


async def test_approval_gate_needs_the_role_and_records_who(demo: System) -> None:
    await first_version(demo)
    operator = await demo.key("operator", "ops")
    gate = {"approval": {"roles": ["admin"], "timeout": "1h", "instructions": "check the graphs"}}
    started = await deploy(demo, "v2", {"type": "canary", "steps": [{"set_weight": 10}, gate]})
    waiting = await until(demo, started["id"], "paused")
    assert "approval" in waiting["status"]["phase"]
    url = f"/api/v1/deployments/{started['id']}"
    promote = await demo.http.post(f"{url}/promote", headers=demo.auth())
    assert promote.status_code == 409 and "approve" in promote.json()["error"]["message"]
    denied = await demo.http.post(f"{url}/approve", headers=demo.auth(operator))
    assert denied.status_code == 409 and "admin" in denied.json()["error"]["message"]
    approved = await demo.http.post(
        f"{url}/approve", json={"reason": "graphs look fine"}, headers=demo.auth()
    )
    assert approved.status_code == 200, approved.text
    done = await until(demo, started["id"], *FINAL)
    assert done["state"] == "succeeded"
    (approval,) = done["status"]["approvals"]
    assert (approval["by"], approval["step"], approval["comment"]) == (
        "apikey:admin",
        2,
        "graphs look fine",
    )


async def test_an_unanswered_approval_aborts(demo: System) -> None:
    await first_version(demo)
    gate = {"approval": {"timeout": "1s", "on_timeout": "abort"}}
    started = await deploy(demo, "v2", {"type": "canary", "steps": [{"set_weight": 10}, gate]})
    done = await until(demo, started["id"], *FINAL)
    assert done["state"] == "aborted" and "no approval within 1s" in done["reason"]


async def test_pause_and_resume_by_hand(demo: System) -> None:
    await first_version(demo)
    steps = [{"set_weight": 10}, {"pause": {"duration": "2s"}}, {"set_weight": 50}]
    started = await deploy(demo, "v2", {"type": "canary", "steps": steps})
    url = f"/api/v1/deployments/{started['id']}"
    paused = await demo.http.put(url, json={"desired": "paused"}, headers=demo.auth())
    assert paused.status_code == 200, paused.text
    held = await until(demo, started["id"], "paused")
    assert held["status"]["phase"] == "paused by hand"
    twice = await demo.http.post(f"{url}/pause", headers=demo.auth())
    assert twice.status_code == 409
    resumed = await demo.http.put(url, json={"desired": "resumed"}, headers=demo.auth())
    assert resumed.status_code == 200
    assert (await until(demo, started["id"], *FINAL))["state"] == "succeeded"


async def test_inconclusive_analysis_waits_for_a_human(demo: System) -> None:
    await first_version(demo)
    # A measurement with no condition to judge it by (the new version's request rate, 0 with
    # no traffic) is inconclusive at once, so the analysis is. (No data at all ends the same
    # way after 30 s of waiting for it: tests/unit/test_deployment_analysis_rules.py, on the
    # time-skipping server, and the router's no-traffic answer: test_analysis_activities.py.)
    quiet = {"metrics": [{"name": "request_rate"}]}
    started = await deploy(
        demo, "v2", {"type": "canary", "steps": [{"set_weight": 20}, {"analysis": quiet}]}
    )
    held = await until(demo, started["id"], "paused")
    assert "inconclusive" in held["status"]["paused_reason"]
    await demo.http.post(f"/api/v1/deployments/{started['id']}/promote", headers=demo.auth())
    assert (await until(demo, started["id"], *FINAL))["state"] == "succeeded"


async def test_blue_green_by_hand_and_its_post_promotion_analysis(demo: System) -> None:
    endpoint = await first_version(demo)
    strategy = {
        "type": "blue_green",
        "auto_promotion_enabled": False,
        "scale_down_delay_seconds": 0,
        "post_promotion_analysis": {
            "metrics": [
                {"name": "error_rate", "failure_condition": "result > 0.1", "initial_delay": "1s"}
            ]
        },
    }
    started = await deploy(demo, "v2", strategy, env={"DEMO_ERROR_RATE": "1"})
    await until(demo, started["id"], "paused")
    assert await versions(endpoint) == {"v1"}  # the preview serves nothing yet
    # Traffic from the promotion on, whatever the time it took to get here (a load started
    # with the deployment could end before the promotion on a busy machine: no data to judge).
    load = asyncio.create_task(run_load(endpoint + "/", rps=60, duration=8))
    await demo.http.post(f"/api/v1/deployments/{started['id']}/promote", headers=demo.auth())
    done = await until(demo, started["id"], *FINAL)
    await load
    assert done["state"] == "rolled_back", done["reason"]
    assert "after promotion" in done["reason"]
    assert await versions(endpoint) == {"v1"}


async def test_pauses_and_analyses_do_not_count_against_the_progress_deadline(
    demo: System,
) -> None:
    await first_version(demo)
    # A pause and an analysis' initial delay, each longer than the deadline: as in Argo
    # Rollouts, time in them is not a lack of progress. (The deadline firing on a stuck step,
    # with its compensation, is a fast test: tests/unit/test_deployment_bounds.py.)
    # The deadline leaves the other steps (starting v2, setting weights) room on a busy machine.
    late = {"name": "request_rate", "initial_delay": "9s", "success_condition": "result >= 0"}
    steps = [{"set_weight": 50}, {"pause": {"duration": "9s"}}, {"analysis": {"metrics": [late]}}]
    slow = {"type": "canary", "steps": steps, "progress_deadline_seconds": 8}
    started = await deploy(demo, "v2", slow)
    done = await until(demo, started["id"], *FINAL)
    assert done["state"] == "succeeded", done
    assert instance_count(demo) == 2


async def test_deployments_are_listed_and_searchable(demo: System) -> None:
    await first_version(demo)
    listed = await demo.http.get(
        "/api/v1/deployments?component=demo&status=succeeded", headers=demo.auth()
    )
    assert listed.json()["total"] == 1
    query = (
        "WorkflowType = 'deployment' AND Component = 'demo' AND Strategy = 'rolling'"
        f" AND DeploymentPhase = 'succeeded' AND TaskQueue = '{demo.settings.task_queue}'"
    )
    found = await wait_for(
        lambda: _search(demo, query), lambda ids: len(ids) == 1, what="search attributes"
    )
    assert found == ["deploy:demo:dev"]


async def _search(system: System, query: str) -> list[str]:
    return [e.id async for e in system.temporal.list_workflows(query)]


async def test_retry_signals_and_the_orchestration_api(demo: System) -> None:
    await first_version(demo)
    # Started through the orchestration API, steered by signals as the Temporal UI sends them.
    steps = [{"set_weight": 10}, {"pause": {}}, {"set_weight": 50}]
    body = {"component": "demo", "environment": "dev", "version": "v2",
            "strategy": {"type": "canary", "steps": steps}}  # fmt: skip
    started = await demo.http.post(
        "/api/v1/orchestration/workflows",
        json={"type": "deployment", "input": body},
        headers=demo.auth(),
    )
    assert started.status_code == 202, started.text
    assert started.json()["id"] == "deploy:demo:dev"
    listed = await demo.http.get("/api/v1/deployments?status=paused", headers=demo.auth())
    handle = demo.temporal.get_workflow_handle("deploy:demo:dev")
    dep_id = (await wait_for(
        lambda: demo.http.get("/api/v1/deployments?component=demo", headers=demo.auth()),
        lambda r: any(i["version"] == "v2" for i in r.json()["items"]),
    )).json()["items"][0]["id"]  # fmt: skip
    await until(demo, dep_id, "paused")
    await handle.signal("abort", {"by": "temporal-ui", "reason": "from the UI"})
    aborted = await until(demo, dep_id, *FINAL)
    assert aborted["state"] == "aborted" and "from the UI" in aborted["reason"]
    assert listed.status_code == 200
    retried = await demo.http.post(f"/api/v1/deployments/{dep_id}/retry", headers=demo.auth())
    assert retried.status_code == 202, retried.text
    again = retried.json()["id"]
    assert again != dep_id
    await until(demo, again, "paused")
    await handle.signal("promote")
    assert (await until(demo, again, *FINAL))["state"] == "succeeded"
    done_retry = await demo.http.post(f"/api/v1/deployments/{again}/retry", headers=demo.auth())
    assert done_retry.status_code == 409


async def test_a_failing_background_analysis_rolls_back(demo: System) -> None:
    endpoint = await first_version(demo)
    metric = {"name": "error_rate", "failure_condition": "result > 0.1", "interval": "1s",
              "initial_delay": "1s"}  # fmt: skip
    strategy = {
        "type": "canary",
        "steps": [{"set_weight": 50}, {"pause": {"duration": "30s"}}, {"set_weight": 100}],
        "analysis": {"metrics": [metric], "starting_step": 1},
    }
    done = await deployed_under_load(demo, endpoint, "v2", strategy, env={"DEMO_ERROR_RATE": "0.8"})
    assert done["state"] == "rolled_back", done["reason"]
    assert "background analysis" in done["reason"]
    assert await versions(endpoint) == {"v1"}


async def test_a_cancel_while_instances_start_leaves_nothing_behind(demo: System) -> None:
    endpoint = await first_version(demo)
    steps = [{"set_weight": 50}, {"pause": {}}]
    started = await deploy(demo, "v2", {"type": "canary", "steps": steps})
    await wait_for(
        lambda: get(demo, started["id"]),
        lambda d: bool(d["status"]) and d["status"]["phase"] == "starting the canary",
        every=0.01,
        what="the canary's instances to be starting",
    )
    cancel = await demo.http.delete(
        "/api/v1/orchestration/workflows/deploy:demo:dev", headers=demo.auth()
    )
    assert cancel.status_code == 202
    done = await until(demo, started["id"], *FINAL)
    assert done["state"] == "aborted", done["reason"]
    assert await versions(endpoint) == {"v1"}
    assert instance_count(demo) == 2
