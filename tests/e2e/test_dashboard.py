"""The dashboard in a real Chromium (Debian's, driven by Playwright): a person signs in through
the test OIDC issuer, watches a canary go from 20% to 100% on its live page, presses Abort on
another and sees it roll back; a viewer sees no action buttons and the server refuses a forged
action from that viewer's session, and a POST without the CSRF token; and the pages (sign-in,
components, deployments, the live page mid-canary) have no axe-core violation of the WCAG 2.0
and 2.1 A/AA rules (axe-core as bundled by axe-playwright-python), plus the keyboard order.

The system runs in this process (API served by uvicorn on a free port, a worker on the no-op
provider: steps, weights and timers are real, nothing is started; the chart's router metrics
come from a stand-in Prometheus, tests/e2e/dashboard_prometheus.py). Screenshots go to the
directory the test prints (R2C_TEST_ARTIFACTS, else a temporary directory); canary-50.png is
the live page mid-canary, weights at 50% and the chart drawn.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Browser, Page, async_playwright, expect

from cli.processes import free_port
from tests.e2e.dashboard_prometheus import standin_prometheus
from tests.integration.conftest import make_system  # noqa: F401 - the fixture, used below
from tests.integration.deploying import deploy, register_demo, until
from tests.integration.oidc_issuer import AUDIENCE, Issuer, running_issuer
from tests.integration.system import System
from tests.serving import serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
WITHIN_MS = 20_000
CANARY = {
    "type": "canary",
    "steps": [
        {"set_weight": 20},
        {"pause": {"duration": "2s"}},
        {"set_weight": 50},
        {"pause": {"duration": "4s"}},  # time to reload the page and draw the chart at 50%
        {"set_weight": 100},
    ],
}
HELD = {"type": "canary", "steps": [{"set_weight": 30}, {"pause": {}}, {"set_weight": 100}]}

# axe-core's WCAG 2.0 and 2.1 rules, levels A and AA, and its best practices
# (axe-playwright-python bundles axe-core: nothing is fetched). Keyboard order is not among
# them: checked by hand below.
AXE = Axe()
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as (running, _):
        running.users = {"alice": ["ui-operators"]}
        yield running


@pytest.fixture
def prometheus() -> Iterator[str]:
    with standin_prometheus() as url:
        yield url


@pytest.fixture
async def system(
    make_system: Callable[..., Any],  # noqa: F811
    issuer: Issuer,
    prometheus: str,
) -> System:
    built: System = await make_system(
        noop=True,
        prometheus_url=prometheus,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_role_map={"ui-operators": "operator"},
    )
    return built


@pytest.fixture
async def served(system: System) -> AsyncIterator[str]:
    """The system's API on a real port (a browser cannot use the in-process transport)."""
    app = system.http._transport.app  # type: ignore[attr-defined]
    async with serving(app, free_port(), lifespan="off", timeout_graceful_shutdown=1) as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def shots() -> Path:
    root = os.environ.get("R2C_TEST_ARTIFACTS") or tempfile.mkdtemp(prefix="r2c-dashboard-")
    folder = Path(root) / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


async def accessible(page: Page) -> None:
    """No axe-core violation on the page as shown; each one printed with its rule, the nodes
    it found and the rule's help page."""
    results = await AXE.run(page, options=AXE_OPTIONS)
    violations = results.response["violations"]
    report = [
        f"{v['id']} ({v['impact']}): {v['help']} - {v['helpUrl']}\n"
        + "\n".join(
            f"    {', '.join(map(str, n['target']))}: {n['html'][:160]}" for n in v["nodes"]
        )
        for v in violations
    ]
    assert not violations, f"{page.url}:\n" + "\n".join(report)


async def test_the_dashboard_in_chromium(
    system: System, served: str, browser: Browser, shots: Path
) -> None:
    await register_demo(system, replicas=1)
    await until(system, (await deploy(system, "v1"))["id"], "succeeded")

    # Sign in through the issuer: the sign-in page, the issuer's page, back where it began.
    person = await browser.new_context()
    page = await person.new_page()
    await page.goto(f"{served}/ui/deployments")
    await expect(page).to_have_url(f"{served}/ui/login?next=/ui/deployments")
    await accessible(page)
    await page.click("#oidc-sign-in")
    await page.fill("#username", "alice")
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{served}/ui/deployments")
    await expect(page.locator("#who")).to_have_text("oidc:alice (operator)")
    await accessible(page)

    # Keyboard: the skip link first, then the navigation, each showing focus.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Deployments"

    # A canary moves from 20% to 100% on its live page.
    canary = await deploy(system, "v2", CANARY)
    await page.goto(f"{served}/ui/deployments/{canary['id']}")
    await expect(page.locator("#weights-text")).to_contain_text("v2 20%", timeout=WITHIN_MS)
    await expect(page.locator("#steps")).to_contain_text("set weight 20%")
    await expect(page.locator("#steps")).to_contain_text("pause 2s")
    await page.screenshot(path=str(shots / "canary-20.png"), full_page=True)
    await expect(page.locator("#weights-text")).to_contain_text("v2 50%", timeout=WITHIN_MS)
    # Mid-canary: the page as it loads now, with the chart of the time so far drawn.
    await page.reload()
    await expect(page.locator("#weights-text")).to_contain_text("v2 50%")
    await expect(page.locator("#chart-source")).to_contain_text("Prometheus")
    assert await page.locator("#chart polyline").count() >= 4  # error and latency, 2 versions
    await page.screenshot(path=str(shots / "canary-50.png"), full_page=True)
    await accessible(page)
    await expect(page.locator("#state")).to_have_text("succeeded", timeout=WITHIN_MS)
    await expect(page.locator("#weights-text")).to_contain_text("v2 100%")
    await expect(page.locator("#actions")).to_be_hidden()
    await page.screenshot(path=str(shots / "canary-succeeded.png"), full_page=True)

    # Abort another: it rolls back to v2, live on the page.
    held = await deploy(system, "v3", HELD)
    await page.goto(f"{served}/ui/deployments/{held['id']}")
    await expect(page.locator("#state")).to_have_text("paused", timeout=WITHIN_MS)
    await expect(page.locator("#weights-text")).to_contain_text("v3 30%")
    await page.screenshot(path=str(shots / "held-paused.png"), full_page=True)
    await page.locator("#action-abort").focus()  # reachable and operable by keyboard
    await page.keyboard.press("Enter")
    await expect(page.locator("#state")).to_have_text("aborted", timeout=WITHIN_MS)
    await expect(page.locator("#weights-text")).not_to_contain_text("v3 30%")
    await page.screenshot(path=str(shots / "held-aborted.png"), full_page=True)
    assert (await until(system, held["id"], "aborted"))["reason"]

    # A POST without the CSRF token, from a signed-in operator's browser: 403.
    bare = await page.request.post(f"{served}/ui/deployments/{held['id']}/actions/rollback")
    assert bare.status == 403

    # A viewer (signed in with an API key): no buttons; a forged POST with its session: 403.
    viewer_key = await system.key("viewer", "ui-viewer")
    viewer = await browser.new_context()
    vpage = await viewer.new_page()
    await vpage.goto(f"{served}/ui/login")
    await vpage.fill("#api-key", viewer_key)
    await vpage.press("#api-key", "Enter")
    await expect(vpage.locator("#who")).to_have_text("apikey:ui-viewer (viewer)")
    await vpage.goto(f"{served}/ui/deployments/{canary['id']}")
    await expect(vpage.locator("#state")).to_have_text("succeeded")
    assert await vpage.locator("#actions button").count() == 0
    token = await vpage.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = await vpage.request.post(
        f"{served}/ui/deployments/{canary['id']}/actions/rollback",
        headers={"X-CSRF-Token": token or ""},
    )
    assert forged.status == 403
    await vpage.goto(f"{served}/ui/components")
    await expect(vpage.locator("table")).to_contain_text("demo")
    await accessible(vpage)
    await vpage.screenshot(path=str(shots / "components-viewer.png"), full_page=True)
    await person.close()
    await viewer.close()
    print(f"screenshots in {shots}: {', '.join(sorted(p.name for p in shots.glob('*.png')))}")
