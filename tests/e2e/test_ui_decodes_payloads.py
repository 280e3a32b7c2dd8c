"""End to end in a real browser: the Temporal Web UI embedded by `r2c up` shows a workflow's
input decoded once the person has signed in at the API's /codec/session with a viewer key (and
set the UI's codec server to include credentials), and only encrypted without that session."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.up_stack import UpStack
from tests.support import wait_for_sync

MARKER = f"ui-codec-marker-{uuid.uuid4().hex[:12]}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
WITHIN_MS = 20_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def include_credentials_in_ui(page: Page, endpoint: str) -> None:
    """The one-time clicks of docs/payload-encryption.md on the UI page shown: in the Codec
    Server settings, use this browser's setting, the codec endpoint, include credentials."""
    page.locator("[data-testid^=data-encoder-status]").first.click()
    page.get_by_text("Use my browser setting and ignore").click()
    page.fill("#data-encoder-endpoint-input", endpoint)
    page.get_by_test_id("data-encoder-include-credentials").check()
    page.get_by_role("button", name="Apply").click()


def start_marked_workflow(stack: UpStack, key: str) -> str:
    with httpx.Client(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=20
    ) as http:
        resp = http.post(
            "/api/v1/orchestration/workflows",
            json={"type": "component-health-check", "input": {"components": [MARKER]}},
        )
        assert resp.status_code == 202, resp.text
        wf_id = str(resp.json()["id"])
        wait_for_sync(
            lambda: http.get(f"/api/v1/orchestration/workflows/{wf_id}").json(),
            lambda wf: wf["status"] == "completed",
            within=30,
            what=f"{wf_id} completed",
        )
        return wf_id


def viewer_key(stack: UpStack, admin: str) -> str:
    resp = httpx.post(
        f"{stack.base_url}/api/v1/apikeys",
        json={"name": "ui-viewer", "role": "viewer"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=20,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


def open_workflow(page: Page, ui_origin: str, wf_id: str, endpoint: str) -> int:
    """Open the workflow's page in the UI set to include credentials in its codec calls; the
    status of the UI's first call to /codec/decode after that."""
    page.goto(f"{ui_origin}/namespaces/default/workflows/{wf_id}")
    include_credentials_in_ui(page, endpoint)
    with page.expect_response(lambda r: "/codec/decode" in r.url, timeout=WITHIN_MS) as decode:
        page.reload()
    return decode.value.status


def test_the_ui_shows_decoded_input_only_to_a_signed_in_viewer(
    up_stack: UpStack, browser: Browser
) -> None:
    run = up_stack.start()
    admin = up_stack.admin_key_file.read_text().strip()
    wf_id = start_marked_workflow(up_stack, admin)
    viewer = viewer_key(up_stack, admin)
    ui_origin = f"http://127.0.0.1:{up_stack.env['R2C_TEMPORAL_UI_PORT']}"
    endpoint = f"{up_stack.base_url}/codec"

    signed_in = browser.new_context()
    page = signed_in.new_page()
    page.goto(f"{endpoint}/session")
    page.fill("#api-key", viewer)
    page.click("button[type=submit]")
    expect(page.locator("#status")).to_contain_text("Signed in as ui-viewer", timeout=WITHIN_MS)
    assert open_workflow(page, ui_origin, wf_id, endpoint) == 200
    expect(page.get_by_text(MARKER).first).to_be_visible(timeout=WITHIN_MS)
    signed_in.close()

    stranger = browser.new_context()
    page = stranger.new_page()
    assert open_workflow(page, ui_origin, wf_id, endpoint) == 401
    expect(page.get_by_text(wf_id).first).to_be_visible(timeout=WITHIN_MS)
    assert MARKER not in page.content()
    stranger.close()

    assert run.stop(signal.SIGTERM) == 0
