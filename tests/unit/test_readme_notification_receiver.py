"""The README's receiver snippet (section Notifications) runs as written on a message signed
the way the worker signs deliveries, and refuses a tampered one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def snippet() -> str:
    section = README.read_text().split("\n## Notifications\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no python block in the README's Notifications section"
    return found.group(1)


def signed(body: str) -> dict[str, str]:
    msg_id, now = "msg_readme", datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(msg_id, now, body),
    }


def test_the_readme_receiver_verifies_a_signed_message(capsys: pytest.CaptureFixture[str]) -> None:
    event = {"type": "deployment.failed", "data": {"component": "demo", "environment": "prod"}}
    body = json.dumps(event)
    exec(snippet(), {"secret": SECRET, "body": body, "headers": signed(body)})
    assert capsys.readouterr().out == "deployment.failed demo prod\n"


def test_the_readme_receiver_refuses_a_tampered_message() -> None:
    body = json.dumps({"type": "deployment.failed", "data": {}})
    headers = signed(body)
    with pytest.raises(WebhookVerificationError):
        exec(snippet(), {"secret": SECRET, "body": body.replace("failed", "succeeded"),
                         "headers": headers})  # fmt: skip
