"""What a notification looks like on the wire: the signed Standard Webhooks request, or a
Slack incoming-webhook body with one readable line."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

USER_AGENT = "r2c-notifications/1"


def standard_webhook(
    message_id: str, payload: dict[str, Any], secrets: list[str], now: datetime
) -> tuple[bytes, dict[str, str]]:
    """The JSON body and the webhook-id/-timestamp/-signature headers. The timestamp is the
    attempt's (receivers refuse old ones), the id the message's (receivers drop repeats).
    One signature per secret, space-separated: during a rotation the previous secret still
    verifies, as Standard Webhooks allows."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    signature = " ".join(Webhook(secret).sign(message_id, now, body) for secret in secrets)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def slack_line(payload: dict[str, Any]) -> str:
    """One line a person reads in a channel, e.g. `deployment.succeeded: demo 1.2.0 in
    staging (rolling): succeeded - done`."""
    data = payload.get("data") or {}
    what = " ".join(
        str(data[k]) for k in ("component", "version") if isinstance(data.get(k), str | int)
    )
    if isinstance(data.get("environment"), str):
        what += f" in {data['environment']}"
    if isinstance(data.get("strategy"), str):
        what += f" ({data['strategy']})"
    state = data.get("state")
    detail = data.get("reason") or data.get("phase")
    line = f"{payload.get('type')}: {what.strip() or payload.get('subject', '')}"
    if state:
        line += f": {state}"
    if detail:
        line += f" - {detail}"
    return line[:1000]


def slack_body(message_id: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"text": slack_line(payload)})
    # Slack ignores the id; a receiver that is not Slack can still drop repeats by it.
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
    }
    return body.encode(), headers
