"""A judge measurement on the dashboard's deployment page, in a real Chromium: the page as the
server renders it (api/ui/templates/deployment.html with the deployment's body embedded) and
its script show the judgement's verdict, score and each compared metric's verdict and reason;
a reason holding markup shows as text, never as an element."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape
from playwright.async_api import Browser, Route, async_playwright, expect

from api.schemas import DeploymentLinks, DeploymentView
from api.ui.pages import _script_json
from api.ui.render import TEMPLATES
from core.judge.result import JudgeResult
from core.models.analysis import Measurement
from core.models.deployments import DeploymentState, DeploymentStatus
from tests.judgements import slow_canary_judgement

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
STATIC = TEMPLATES.parent / "static"
SITE = "http://r2c.test"
HOSTILE = "<img src=x onerror=\"document.title='owned'\">"


def judged() -> JudgeResult:
    """A real judgement whose errors metric's reason carries markup, as a hostile label might."""
    result = slow_canary_judgement()
    latency, errors = result.metrics
    errors = errors.model_copy(update={"reason": errors.reason + " " + HOSTILE})
    return result.model_copy(update={"metrics": [latency, errors]})


def page_html(result: JudgeResult) -> str:
    at = datetime(2026, 11, 29, 14, 2, tzinfo=UTC)
    measurement = Measurement(
        metric="judge", index=1, value=result.score, phase="failed", at=at,
        message="judge: " + result.reason + "; the rollout rolls back", judgement=result,
    )  # fmt: skip
    status = DeploymentStatus(
        deployment_id="dep-7", component="demo", environment="staging", version="v2",
        previous_version="v1", strategy="canary", state=DeploymentState.ROLLED_BACK,
        measurements=[measurement],
    )  # fmt: skip
    view = DeploymentView(
        id="dep-7", component="demo", environment="staging", version="v2", strategy="canary",
        state=DeploymentState.ROLLED_BACK, initiator="apikey:admin", rollback_of=None,
        reason="analysis failed", created_at=at, finished_at=at, status=status,
        links=DeploymentLinks(self="/api/v1/deployments/dep-7", temporal_ui=SITE + "/temporal"),
    )  # fmt: skip
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("deployment.html").render(
        principal=None, can_act=False, csrf_token="t", path="/ui/deployments/dep-7",
        view=view, may_act=False, final=True,
        initial=_script_json(view.model_dump_json(by_alias=True)), plan=_script_json("[]"),
    )  # fmt: skip


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_deployment_page_shows_the_judgement(browser: Browser) -> None:
    html = page_html(judged())

    async def serve(route: Route) -> None:
        path = route.request.url.removeprefix(SITE)
        if path == "/ui/deployments/dep-7":
            await route.fulfill(body=html, content_type="text/html")
        elif path.startswith("/ui/static/"):
            file = STATIC / Path(path).name
            kind = "text/css" if file.suffix == ".css" else "text/javascript"
            await route.fulfill(body=file.read_text(encoding="utf-8"), content_type=kind)
        else:  # the chart's traffic: none
            await route.fulfill(status=404, body="{}", content_type="application/json")

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.route(SITE + "/**", serve)
    await page.goto(SITE + "/ui/deployments/dep-7")
    row = page.locator("#measurements tr").first
    await expect(row).to_contain_text("Judged fail at score 0 of 100", timeout=10_000)
    text = " ".join((await row.inner_text()).split())
    assert "fail at score 0 (critical metric latency fails)" in text
    assert "latency (critical): fail — latency of v2 is" in text
    assert "fails: shift and tail above the 10% tolerance" in text
    assert "errors: pass — errors: v2 failed 0.50% of its requests" in text
    assert HOSTILE in text  # shown as text...
    assert await page.locator("#measurements img").count() == 0  # ...never as markup
    assert await page.title() != "owned"
    assert errors == []
