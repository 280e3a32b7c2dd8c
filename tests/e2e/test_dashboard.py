"""The dashboard in a real Chromium (Debian's, driven by Playwright): a person signs in through
the test OIDC issuer, watches a canary go from 20% to 100% on its live page, presses Abort on
another and sees it roll back; a viewer sees no action buttons and the server refuses a forged
action from that viewer's session, and a POST without the CSRF token; and the pages pass
basic accessibility checks (lang, labels, alt texts, keyboard order and focus, contrast),
written here because axe-core cannot be fetched (no CDN, no npm) in this project.

The system runs in this process (API served by uvicorn on a free port, a worker on the no-op
provider: steps, weights and timers are real, nothing is started). Screenshots go to the
directory the test prints (R2C_TEST_ARTIFACTS, else a temporary directory).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from cli.processes import free_port
from tests.integration.conftest import make_system  # noqa: F401 - the fixture, used below
from tests.integration.deploying import deploy, register_demo, until
from tests.integration.oidc_issuer import AUDIENCE, Issuer, running_issuer
from tests.integration.system import System

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
        {"pause": {"duration": "2s"}},
        {"set_weight": 100},
    ],
}
HELD = {"type": "canary", "steps": [{"set_weight": 30}, {"pause": {}}, {"set_weight": 100}]}

# Runs in the page: the accessibility basics of the page shown, as a list of problems.
A11Y_CHECKS = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("html has no lang");
  if (!document.title) problems.push("page has no title");
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const labelled = (el.id && document.querySelector(`label[for="${el.id}"]`))
      || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!labelled) problems.push(`unlabelled ${el.tagName} ${el.name}`);
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push(`img without alt: ${img.src}`);
  }
  for (const b of document.querySelectorAll("button, a[href]")) {
    if (!b.textContent.trim() && !b.getAttribute("aria-label")) problems.push("nameless control");
  }
  if (!document.querySelector("h1")) problems.push("no h1");
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest("[hidden], script, style, title, svg")) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") continue;
    const fg = lum(rgb(style.color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const large = parseFloat(style.fontSize) >= 24
      || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)} of "${el.textContent.trim().slice(0, 30)}"`);
    }
  }
  return problems;
}"""


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as (running, _):
        running.users = {"alice": ["ui-operators"]}
        yield running


@pytest.fixture
async def system(make_system: Callable[..., Any], issuer: Issuer) -> System:  # noqa: F811
    built: System = await make_system(
        noop=True,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_role_map={"ui-operators": "operator"},
    )
    return built


@pytest.fixture
async def served(system: System) -> AsyncIterator[str]:
    """The system's API on a real port (a browser cannot use the in-process transport)."""
    app = system.http._transport.app  # type: ignore[attr-defined]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )  # fmt: skip
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


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
    problems = await page.evaluate(A11Y_CHECKS)
    assert not problems, f"{page.url}: {problems}"


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
    await accessible(page)
    await expect(page.locator("#weights-text")).to_contain_text("v2 50%", timeout=WITHIN_MS)
    await page.screenshot(path=str(shots / "canary-50.png"), full_page=True)
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
