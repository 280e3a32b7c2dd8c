"""OIDC bearer tokens against a real issuer running in the test (tests/integration/oidc_issuer.py):
roles from groups, the client-credentials grant, key rotation, forged and broken tokens, and an
issuer that goes away."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from core.oidc import OidcConfig, OidcVerifier
from tests.integration.oidc_issuer import AUDIENCE, Client, Issuer, b64json, running_issuer
from tests.integration.system import System

ROLE_MAP = {"readers": "viewer", "developers": "operator", "platform-admins": "admin"}
WORKFLOWS = "/api/v1/orchestration/workflows"
START = {"type": "component-health-check", "input": {}}


@pytest.fixture
def issuer_and_server() -> Iterator[tuple[Issuer, Any]]:
    with running_issuer() as running:
        yield running


@pytest.fixture
def issuer(issuer_and_server: tuple[Issuer, Any]) -> Issuer:
    return issuer_and_server[0]


@pytest.fixture
async def oidc_system(make_system: Callable[..., Any], issuer: Issuer) -> System:
    system: System = await make_system(
        worker=False,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_role_map=ROLE_MAP,
    )
    return system


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fresh_verifier(system: System, clock: FakeClock | None = None) -> OidcVerifier:
    """Replace the app's verifier by one with no cached keys (and a clock the test moves)."""
    config = OidcConfig.from_settings(system.settings)
    assert config is not None
    verifier = OidcVerifier(config, monotonic=clock or FakeClock())
    system.http._transport.app.state.oidc = verifier  # type: ignore[attr-defined]
    return verifier


async def audit_events(system: System, action: str) -> list[dict[str, Any]]:
    resp = await system.http.get(
        "/api/v1/audit", params={"action": action, "limit": 1000}, headers=system.auth()
    )
    assert resp.status_code == 200, resp.text
    events: list[dict[str, Any]] = resp.json()
    return events


async def test_groups_give_roles_and_audit_names_the_person(
    oidc_system: System, issuer: Issuer
) -> None:
    viewer = issuer.mint(groups=["readers", "unmapped"], preferred_username="vera")
    assert (await oidc_system.http.get(WORKFLOWS, headers=bearer(viewer))).status_code == 200
    denied = await oidc_system.http.post(WORKFLOWS, json=START, headers=bearer(viewer))
    assert denied.status_code == 403
    assert "operator" in denied.json()["error"]["message"]
    assert "'vera'" in denied.json()["error"]["message"]

    # The highest role of the token's groups wins; a space-separated claim works too.
    admin = issuer.mint(groups="readers platform-admins", preferred_username="alice")
    started = await oidc_system.http.post(WORKFLOWS, json=START, headers=bearer(admin))
    assert started.status_code == 202, started.text
    detail = await oidc_system.get(started.json()["id"])
    assert detail["initiator"] == "oidc:alice"
    created = await oidc_system.http.post(
        "/api/v1/apikeys", json={"name": "made-by-sso", "role": "viewer"}, headers=bearer(admin)
    )
    assert created.status_code == 201
    made = [e for e in await audit_events(oidc_system, "apikey.created") if e["actor"]]
    assert "oidc:alice" in [e["actor"] for e in made]
    denials = await audit_events(oidc_system, "auth.denied")
    assert any(e["actor"] == "oidc:vera" for e in denials)

    nobody = issuer.mint(groups=["unmapped"])
    refused = await oidc_system.http.get(WORKFLOWS, headers=bearer(nobody))
    assert refused.status_code == 401
    assert "R2C_OIDC_ROLE_MAP" in refused.json()["error"]["message"]
    # API keys are unchanged alongside tokens.
    assert (await oidc_system.http.get(WORKFLOWS, headers=oidc_system.auth())).status_code == 200


async def test_a_machine_client_gets_a_token_by_client_credentials(
    oidc_system: System, issuer: Issuer
) -> None:
    issuer.clients["ci-bot"] = Client(secret="ci-bot-secret", groups=["developers"])
    async with httpx.AsyncClient() as http:
        discovery = (await http.get(f"{issuer.url}/.well-known/openid-configuration")).json()
        wrong = await http.post(
            discovery["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=("ci-bot", "not-the-secret"),
        )
        assert wrong.status_code == 401
        granted = await http.post(
            discovery["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=("ci-bot", "ci-bot-secret"),
        )
    assert granted.status_code == 200
    token = granted.json()["access_token"]
    started = await oidc_system.http.post(WORKFLOWS, json=START, headers=bearer(token))
    assert started.status_code == 202, started.text
    assert (await oidc_system.get(started.json()["id"]))["initiator"] == "oidc:ci-bot"
    keys = await oidc_system.http.get("/api/v1/apikeys", headers=bearer(token))
    assert keys.status_code == 403


async def test_each_bad_token_is_401_with_a_reason_that_leaks_nothing(
    oidc_system: System, issuer: Issuer
) -> None:
    good = issuer.mint(groups=["platform-admins"])
    # New claims under the old signature: someone promoting themselves.
    header, _, signature = issuer.mint(groups=["readers"]).split(".")
    tampered = f"{header}.{b64json(issuer.claims(groups=['platform-admins'], sub='mallory'))}."
    tampered += signature
    stranger = Issuer(url=issuer.url)
    stranger.new_key()  # same kid name as the issuer's first key, but another key
    foreign_key = stranger.keys[0][1]
    forged_kid = Issuer(url=issuer.url, _serial=41)
    forged_kid.new_key()
    cases = {
        "expired": (issuer.mint(exp=1_000_000, iat=999_000, nbf=999_000), "token expired"),
        "not yet valid": (
            issuer.mint(nbf=int(9e9), iat=None),
            "token not yet valid",
        ),
        "issued in the future": (issuer.mint(iat=int(9e9)), "issued in the future"),
        "wrong audience": (issuer.mint(aud="another-api"), "audience is not this API"),
        "audience list without ours": (
            issuer.mint(aud=["a", "b"]),
            "expected R2C_OIDC_AUDIENCE",
        ),
        "wrong issuer": (
            issuer.mint(iss="https://evil.example"),
            "token issuer is not R2C_OIDC_ISSUER",
        ),
        "alg none": (issuer.unsigned(groups=["platform-admins"]), "algorithm not accepted"),
        "HS256 with the public key": (
            issuer.hs256_with_public_key(groups=["platform-admins"]),
            "algorithm not accepted",
        ),
        "tampered payload": (tampered, "signature does not verify"),
        "signed by another key with a known kid": (
            issuer.mint(key=foreign_key, alg="RS256"),
            "signature does not verify",
        ),
        "unknown kid": (forged_kid.mint(), "unknown key"),
        "no expiry": (issuer.mint(exp=None), "no exp"),
        "garbage header": ("bm90LWpzb24.e30.c2ln", "not a base64url JSON object"),
    }
    answers = {}
    for name, (token, reason) in cases.items():
        resp = await oidc_system.http.get(WORKFLOWS, headers=bearer(token))
        assert resp.status_code == 401, (name, resp.text)
        message = resp.json()["error"]["message"]
        assert reason in message, (name, message)
        assert token not in resp.text and token.split(".")[1] not in resp.text, name
        assert resp.json()["error"]["hint"], name
        answers[name] = message
    print("\n".join(f"{n}: 401 {m}" for n, m in answers.items()))
    # An accepted token right after: nothing above poisoned the cache.
    assert (await oidc_system.http.get(WORKFLOWS, headers=bearer(good))).status_code == 200

    failed = await audit_events(oidc_system, "auth.failed")
    reasons = {e["detail"]["reason"] for e in failed}
    assert {"token_expired", "token_algorithm", "token_signature", "token_audience"} <= reasons
    trail = json.dumps(failed)
    # No part of any token (the garbage one's parts are too short to tell from a hash's hex).
    parts = [p for t, _ in cases.values() for p in t.split(".") if len(p) > 16]
    assert parts and not [p for p in parts if p in trail]


async def test_rotated_keys_are_fetched_and_withdrawn_ones_refused(
    oidc_system: System, issuer: Issuer
) -> None:
    clock = FakeClock()
    verifier = fresh_verifier(oidc_system, clock)
    old = issuer.mint(groups=["readers"])
    assert (await oidc_system.http.get(WORKFLOWS, headers=bearer(old))).status_code == 200
    assert issuer.jwks_requests == 1

    # Rotation: the issuer signs with a new key and withdraws the old one.
    old_kid = issuer.keys[0][1].kid
    issuer.new_key("ES256")
    issuer.withdraw(str(old_kid))
    new = issuer.mint(groups=["readers"])
    # Within the refetch interval an unknown kid does not reach the issuer...
    early = await oidc_system.http.get(WORKFLOWS, headers=bearer(new))
    assert early.status_code == 401 and "unknown key" in early.json()["error"]["message"]
    assert issuer.jwks_requests == 1
    # ...after it, one refetch finds the new key, and the old one is gone.
    clock.now += verifier.min_refetch_seconds
    assert (await oidc_system.http.get(WORKFLOWS, headers=bearer(new))).status_code == 200
    assert issuer.jwks_requests == 2
    gone = await oidc_system.http.get(WORKFLOWS, headers=bearer(old))
    assert gone.status_code == 401 and "unknown key" in gone.json()["error"]["message"]

    # A flood of invented kids costs the issuer at most one request per interval.
    forger = Issuer(url=issuer.url, _serial=1000)
    for _ in range(30):
        forger.new_key()
        resp = await oidc_system.http.get(WORKFLOWS, headers=bearer(forger.mint()))
        assert resp.status_code == 401
    assert issuer.jwks_requests == 2
    clock.now += verifier.min_refetch_seconds
    for _ in range(30):
        forger.new_key()
        await oidc_system.http.get(WORKFLOWS, headers=bearer(forger.mint()))
    assert issuer.jwks_requests == 3

    # EdDSA keys work too.
    issuer.new_key("EdDSA")
    clock.now += verifier.min_refetch_seconds
    eddsa = issuer.mint(groups=["readers"])
    assert (await oidc_system.http.get(WORKFLOWS, headers=bearer(eddsa))).status_code == 200


async def test_an_unreachable_issuer_is_503_unless_its_keys_are_cached(
    oidc_system: System, issuer_and_server: tuple[Issuer, Any]
) -> None:
    issuer, server = issuer_and_server
    token = issuer.mint(groups=["readers"])
    assert (await oidc_system.http.get(WORKFLOWS, headers=bearer(token))).status_code == 200
    server.shutdown()
    server.server_close()
    # The cached keys keep working while the issuer is away.
    assert (await oidc_system.http.get(WORKFLOWS, headers=bearer(token))).status_code == 200
    fresh_verifier(oidc_system)
    resp = await oidc_system.http.get(WORKFLOWS, headers=bearer(token))
    assert resp.status_code == 503
    message = resp.json()["error"]["message"]
    assert "keys cannot be obtained" in message and "cannot be fetched (ConnectError)" in message
    assert "API keys keep working" in resp.json()["error"]["hint"]
    assert (await oidc_system.http.get(WORKFLOWS, headers=oidc_system.auth())).status_code == 200


async def test_without_an_issuer_a_token_is_401_saying_so(
    make_system: Callable[..., Any], issuer: Issuer
) -> None:
    system: System = await make_system(worker=False)
    resp = await system.http.get(WORKFLOWS, headers=bearer(issuer.mint()))
    assert resp.status_code == 401
    assert "R2C_OIDC_ISSUER is not set" in resp.json()["error"]["message"]
