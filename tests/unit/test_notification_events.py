"""Which notification a deployment's state change is, what its message looks like on the
wire (signed Standard Webhooks, Slack), and which receivers the SSRF guard refuses."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from activities.deployment_events import event_data, event_of
from activities.notification_messages import slack_body, slack_line, standard_webhook
from activities.notifications import signing_secrets
from core.models.deployments import DeploymentState, DeploymentStatus, PauseReason
from core.notification_urls import UrlRefused, check_resolved, check_url

S = DeploymentState


def status(state: DeploymentState, phase: str, **extra: object) -> DeploymentStatus:
    return DeploymentStatus(
        deployment_id="dep-1",
        component="demo",
        environment="prod",
        version="v2",
        strategy="canary",
        state=state,
        phase=phase,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("previous", "state", "phase", "expected"),
    [
        (None, S.PROGRESSING, "reading the current state", "deployment.started"),
        (S.PENDING, S.PROGRESSING, "reading the current state", "deployment.started"),
        (S.PROGRESSING, S.PAUSED, "step 2: paused until promoted", "deployment.paused"),
        (S.PROGRESSING, S.PAUSED, "paused by hand", "deployment.paused"),
        (S.PROGRESSING, S.PAUSED, "waiting for approval by admin", "deployment.awaiting_approval"),
        (S.PAUSED, S.PROGRESSING, "promoted", "deployment.promoted"),
        (S.PAUSED, S.PROGRESSING, "approved", "deployment.promoted"),
        (S.PROGRESSING, S.SUCCEEDED, "done", "deployment.succeeded"),
        (S.PAUSED, S.ROLLED_BACK, "rolled_back", "deployment.rolled_back"),
        (S.PROGRESSING, S.ABORTED, "aborted", "deployment.aborted"),
        (None, S.FAILED, "failed", "deployment.failed"),
        (S.SUCCEEDED, S.SUCCEEDED, "done", None),  # recorded again: no second event
        (S.PROGRESSING, S.PROGRESSING, "step 3", None),
    ],
)
def test_each_state_change_is_its_event(
    previous: DeploymentState | None, state: DeploymentState, phase: str, expected: str | None
) -> None:
    event = event_of(previous, status(state, phase))
    assert (event.value if event else None) == expected


def test_an_approval_pause_is_known_by_its_type_too() -> None:
    paused = status(S.PAUSED, "held", pause_reason=PauseReason.APPROVAL)
    assert event_of(S.PROGRESSING, paused) == "deployment.awaiting_approval"


def test_the_event_data_names_the_deployment_and_links_to_it() -> None:
    data = event_data(status(S.SUCCEEDED, "done", reason="v2 serves 100% of the traffic"))
    assert data["links"] == {"deployment": "/api/v1/deployments/dep-1"}
    assert (data["component"], data["environment"], data["version"]) == ("demo", "prod", "v2")
    assert "env" not in data and "weights" not in data


PAYLOAD = {
    "type": "deployment.succeeded",
    "id": "dep-1:succeeded:run:9",
    "timestamp": "2026-11-29T02:00:00Z",
    "subject": "deployments/dep-1",
    "data": {
        "component": "demo",
        "environment": "prod",
        "version": "v2",
        "strategy": "canary",
        "state": "succeeded",
        "phase": "done",
        "reason": "v2 serves 100% of the traffic",
    },
}


def test_a_standard_webhook_verifies_with_the_secret_and_not_with_another() -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    now = datetime.now(UTC)
    body, headers = standard_webhook("msg_1", PAYLOAD, [secret], now)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(body, headers) == PAYLOAD
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"v2", b"v3"), headers)


def test_during_a_rotation_the_previous_secret_verifies_too() -> None:
    new, old = "whsec_" + "B" * 32, "whsec_" + "C" * 32
    now = datetime.now(UTC)
    stored = {"signing_secret": new, "previous": old, "previous_until": now.isoformat()}
    assert signing_secrets(stored, now - timedelta(seconds=1)) == [new, old]
    assert signing_secrets(stored, now + timedelta(seconds=1)) == [new]
    body, headers = standard_webhook("msg_2", PAYLOAD, [new, old], now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(body, headers) == Webhook(old).verify(body, headers) == PAYLOAD


def test_a_slack_message_is_one_readable_line() -> None:
    body, _ = slack_body("msg_1", PAYLOAD)
    assert json.loads(body) == {
        "text": "deployment.succeeded: demo v2 in prod (canary): succeeded"
        " - v2 serves 100% of the traffic"
    }
    health = {"type": "component.unhealthy", "subject": "demo", "data": {"component": "demo"}}
    assert slack_line(health) == "component.unhealthy: demo"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/x", "http and https"),
        ("http://169.254.169.254/latest/meta-data/", "link-local or metadata"),
        ("http://[::ffff:169.254.169.254]/", "link-local or metadata"),
        ("http://0.0.0.0:80/", "link-local or metadata"),
        ("http://127.0.0.1:8080/x", "loopback or private"),
        ("http://10.0.0.5/x", "loopback or private"),
        ("http://localhost/x", "loopback"),
        ("http://a:b@example.com/x", "credentials"),
        ("http://example.com:99999/x", "not a URL"),
    ],
)
def test_the_guard_refuses_what_a_url_must_not_reach(url: str, words: str) -> None:
    with pytest.raises(UrlRefused, match=words):
        check_url(url, allow_private=False)


def test_loopback_is_allowed_where_private_receivers_are_but_metadata_never() -> None:
    assert check_url("http://127.0.0.1:9/x", allow_private=True) == ("127.0.0.1", 9)
    assert check_url("https://hooks.example.com/x", allow_private=False)[1] == 443
    with pytest.raises(UrlRefused):
        check_url("http://169.254.169.254/", allow_private=True)


async def test_a_name_that_resolves_to_a_private_address_is_refused_at_the_edge() -> None:
    # The machine's own name resolves to its loopback or private address (/etc/hosts).
    name = socket.gethostname()
    with pytest.raises(UrlRefused, match="resolves to"):
        await check_resolved(f"http://{name}:8080/x", allow_private=False)
    await check_resolved(f"http://{name}:8080/x", allow_private=True)
