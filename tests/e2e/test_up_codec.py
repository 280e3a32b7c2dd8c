"""End to end: `r2c up` encrypts every payload, and its API is the codec server that the
Temporal tools (here the real Temporal CLI, as the Web UI would) use to read them."""

from __future__ import annotations

import base64
import json
import signal
import stat
import subprocess
import uuid
from typing import Any

import httpx

from cli.temporal_server import temporal_binary
from core.payload_keys import KEY_FILE_NAME, read_ring
from tests.e2e.up_stack import UpStack
from tests.support import wait_for_sync

MARKER = f"e2e-codec-marker-{uuid.uuid4().hex[:12]}"


def show_history(stack: UpStack, wf_id: str, *codec: str) -> subprocess.CompletedProcess[str]:
    """`temporal workflow show` against the stack's server, with the codec options given."""
    address = f"127.0.0.1:{stack.env['R2C_TEMPORAL_PORT']}"
    return subprocess.run(
        [
            temporal_binary(),
            "workflow",
            "show",
            "-w",
            wf_id,
            "--address",
            address,
            "--output",
            "json",
            *codec,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )


def payload_texts(history_json: str) -> str:
    """Every payload's data in the history, decoded from base64: what a reader gets to see."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "metadata" in node and isinstance(node.get("data"), str):
                found.append(base64.b64decode(node["data"]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join(found)


def test_up_encrypts_payloads_and_serves_them_decoded_to_key_holders(up_stack: UpStack) -> None:
    run = up_stack.start()
    key = up_stack.admin_key_file.read_text().strip()
    # The API and the worker started together on a fresh home: one key file, one key.
    ring = read_ring(up_stack.home)
    assert len(ring.keys) == 1
    assert stat.S_IMODE((up_stack.home / KEY_FILE_NAME).stat().st_mode) == 0o600
    with httpx.Client(
        base_url=up_stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=20
    ) as http:
        resp = http.post(
            "/api/v1/orchestration/workflows",
            json={"type": "component-health-check", "input": {"components": [MARKER]}},
        )
        assert resp.status_code == 202, resp.text
        wf_id = resp.json()["id"]
        wait_for_sync(
            lambda: http.get(f"/api/v1/orchestration/workflows/{wf_id}").json(),
            lambda wf: wf["status"] == "completed",
            within=30,
            what=f"{wf_id} completed",
        )
        ui_origin = f"http://127.0.0.1:{up_stack.env['R2C_TEMPORAL_UI_PORT']}"
        preflight = http.options(
            "/codec/decode",
            headers={
                "Origin": ui_origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ui_origin

    raw = show_history(up_stack, wf_id)
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["events"]
    assert MARKER not in raw.stdout and MARKER not in payload_texts(raw.stdout)

    codec = f"{up_stack.base_url}/codec"
    decoded = show_history(up_stack, wf_id, "--codec-endpoint", codec, "--codec-auth",
                           f"Bearer {key}")  # fmt: skip
    assert decoded.returncode == 0, decoded.stderr
    assert MARKER in payload_texts(decoded.stdout)

    refused = show_history(up_stack, wf_id, "--codec-endpoint", codec)
    assert MARKER not in refused.stdout + refused.stderr
    if refused.returncode == 0:
        assert MARKER not in payload_texts(refused.stdout)

    assert run.stop(signal.SIGTERM) == 0
