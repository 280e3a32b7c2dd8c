"""The token verifier's rules, against an issuer served in-process (httpx.MockTransport): the
leeway's edges, the role mapping, names in the audit trail, the discovery document's checks,
the JWKS cache's refresh and the settings that configure it all."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from core.models.apikeys import Role
from core.oidc import (
    IssuerUnavailable,
    OidcConfig,
    OidcVerifier,
    TokenRejected,
    looks_like_jwt,
)
from core.settings import SettingsError, load_settings

ISSUER = "https://idp.example"
NOW = 1_800_000_000.0
CONFIG = OidcConfig(
    issuer=ISSUER,
    audience="r2c-api",
    roles_claim="groups",
    role_map={"readers": Role.VIEWER, "devs": Role.OPERATOR, "ops": Role.ADMIN},
    leeway=60,
)


class FakeIssuer:
    def __init__(self) -> None:
        self.keys: list[Key] = [RSAKey.generate_key(2048, parameters={"kid": "k1"})]
        self.discovery: dict[str, Any] = {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
        self.jwks_requests = 0
        self.down = False
        self.jwks_body: bytes | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("down", request=request)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        self.jwks_requests += 1
        if self.jwks_body is not None:
            return httpx.Response(200, content=self.jwks_body)
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys]})

    def token(self, key: Key | None = None, alg: str = "RS256", **claims: Any) -> str:
        key = key or self.keys[-1]
        body = {
            "iss": ISSUER,
            "aud": "r2c-api",
            "sub": "u1",
            "exp": NOW + 300,
            "groups": ["readers"],
        }
        body.update(claims)
        header = {"alg": alg, "kid": key.kid}
        return jwt.encode(header, {k: v for k, v in body.items() if v is not None}, key, [alg])


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(issuer: FakeIssuer, clock: Clock) -> OidcVerifier:
    return OidcVerifier(
        CONFIG, clock=clock, monotonic=clock, transport=httpx.MockTransport(issuer.handle)
    )


async def reason_of(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(TokenRejected) as caught:
        await verifier.verify(token)
    return caught.value.reason


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"exp": NOW - 59}, True),
        ({"exp": NOW - 61}, False),
        ({"nbf": NOW + 59}, True),
        ({"nbf": NOW + 61}, False),
        ({"iat": NOW + 59}, True),
        ({"iat": NOW + 61}, False),
    ],
)
async def test_time_claims_allow_the_leeway_and_no_more(
    verifier: OidcVerifier, issuer: FakeIssuer, claims: dict[str, Any], accepted: bool
) -> None:
    token = issuer.token(**claims)
    if accepted:
        assert (await verifier.verify(token)).role is Role.VIEWER
    else:
        assert await reason_of(verifier, token) in ("expired", "not_yet_valid")


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (["readers"], Role.VIEWER),
        (["readers", "ops", "devs"], Role.ADMIN),
        ("devs readers", Role.OPERATOR),
        (["nobody", 7, {"x": 1}, "devs"], Role.OPERATOR),
    ],
)
async def test_the_highest_mapped_group_gives_the_role(
    verifier: OidcVerifier, issuer: FakeIssuer, groups: Any, role: Role
) -> None:
    assert (await verifier.verify(issuer.token(groups=groups))).role is role


@pytest.mark.parametrize("groups", [["nobody"], [], None, 42, {"ops": True}])
async def test_no_mapped_group_is_no_role(
    verifier: OidcVerifier, issuer: FakeIssuer, groups: Any
) -> None:
    assert await reason_of(verifier, issuer.token(groups=groups)) == "no_role"


async def test_another_claim_can_carry_the_groups(issuer: FakeIssuer, clock: Clock) -> None:
    config = OidcConfig(**{**CONFIG.__dict__, "roles_claim": "roles"})
    verifier = OidcVerifier(
        config, clock=clock, monotonic=clock, transport=httpx.MockTransport(issuer.handle)
    )
    assert (await verifier.verify(issuer.token(groups=None, roles=["ops"]))).role is Role.ADMIN


@pytest.mark.parametrize(
    ("claims", "initiator", "key_id"),
    [
        ({"preferred_username": "alice@example.com"}, "oidc:alice@example.com", "oidc:u1"),
        ({"preferred_username": "bad name\n"}, "oidc:u1", "oidc:u1"),
        ({"sub": "svc:ci-bot"}, "oidc:svc:ci-bot", "oidc:svc:ci-bot"),
    ],
)
async def test_the_principal_names_the_person(
    verifier: OidcVerifier,
    issuer: FakeIssuer,
    claims: dict[str, Any],
    initiator: str,
    key_id: str,
) -> None:
    principal = await verifier.verify(issuer.token(**claims))
    assert (principal.initiator, principal.key_id) == (initiator, key_id)


async def test_an_unprintable_subject_is_named_by_an_encoding_of_it(
    verifier: OidcVerifier, issuer: FakeIssuer
) -> None:
    principal = await verifier.verify(issuer.token(sub="a b\u2028c"))
    assert principal.initiator.startswith("oidc:sub-")
    assert "\u2028" not in principal.initiator


async def test_a_token_may_not_choose_a_key_type_its_algorithm_does_not_use(
    verifier: OidcVerifier, issuer: FakeIssuer
) -> None:
    ec = ECKey.generate_key("P-256", parameters={"kid": "k1"})  # the RSA key's kid
    assert await reason_of(verifier, issuer.token(key=ec, alg="ES256")) == "algorithm"


async def test_a_discovery_document_for_another_issuer_is_refused(
    verifier: OidcVerifier, issuer: FakeIssuer
) -> None:
    issuer.discovery["issuer"] = "https://idp.example/"
    with pytest.raises(IssuerUnavailable, match="names another issuer"):
        await verifier.verify(issuer.token())


async def test_an_oversized_jwks_is_refused(verifier: OidcVerifier, issuer: FakeIssuer) -> None:
    issuer.jwks_body = b'{"keys": [' + b" " * 600_000 + b"]}"
    with pytest.raises(IssuerUnavailable, match="over"):
        await verifier.verify(issuer.token())


async def test_symmetric_and_encryption_keys_in_the_jwks_are_ignored(
    verifier: OidcVerifier, issuer: FakeIssuer
) -> None:
    rsa = issuer.keys[0].as_dict(private=False)
    issuer.jwks_body = json.dumps(
        {
            "keys": [
                {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
                {**rsa, "kid": "enc", "use": "enc"},
                {"kty": "RSA", "kid": "broken", "n": "!!"},
                rsa,
            ]
        }
    ).encode()
    assert (await verifier.verify(issuer.token())).role is Role.VIEWER
    other = RSAKey.generate_key(2048, parameters={"kid": "enc"})
    assert await reason_of(verifier, issuer.token(key=other)) == "unknown_key"


async def test_stale_keys_are_refreshed_and_kept_while_the_issuer_is_down(
    verifier: OidcVerifier, issuer: FakeIssuer, clock: Clock
) -> None:
    token = issuer.token(exp=NOW + 10_000)
    await verifier.verify(token)
    clock.now += verifier.max_age
    issuer.down = True
    assert (await verifier.verify(token)).role is Role.VIEWER
    issuer.down = False
    issuer.keys = [RSAKey.generate_key(2048, parameters={"kid": "k2"})]
    clock.now += verifier.max_age
    assert await reason_of(verifier, token) == "unknown_key"  # k1 withdrawn


async def test_concurrent_unknown_kids_share_one_refetch(
    verifier: OidcVerifier, issuer: FakeIssuer, clock: Clock
) -> None:
    await verifier.verify(issuer.token())
    clock.now += verifier.min_refetch_seconds
    issuer.keys.append(RSAKey.generate_key(2048, parameters={"kid": "k2"}))
    tokens = [issuer.token() for _ in range(20)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert all(p.role is Role.VIEWER for p in results)
    assert issuer.jwks_requests == 2


def test_jwt_shape_is_told_from_an_api_key() -> None:
    assert looks_like_jwt("eyJh.eyJi.c2ln")
    assert looks_like_jwt("eyJh.eyJi.")  # alg none: refused later, with its reason
    assert not looks_like_jwt("r2c_0123456789ab_secretsecret")
    assert not looks_like_jwt("a.b")
    assert not looks_like_jwt("a b.c.d")


@pytest.fixture
def oidc_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("R2C_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("R2C_OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("R2C_OIDC_AUDIENCE", "r2c-api")
    monkeypatch.setenv("R2C_OIDC_ROLE_MAP", '{"platform-admins": "admin", "devs": "operator"}')
    return monkeypatch


def test_oidc_settings_are_read_from_the_environment(oidc_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.oidc_role_map == {"platform-admins": Role.ADMIN, "devs": Role.OPERATOR}
    assert (s.oidc_roles_claim, s.oidc_leeway_seconds) == ("groups", 60)
    assert OidcConfig.from_settings(s) is not None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("R2C_OIDC_ROLE_MAP", "{not json", "R2C_OIDC_ROLE_MAP: Value error, expected a JSON"),
        ("R2C_OIDC_ROLE_MAP", '["admin"]', "R2C_OIDC_ROLE_MAP: Value error, expected a JSON"),
        ("R2C_OIDC_ROLE_MAP", '{"devs": "root"}', "'viewer', 'operator' or 'admin'"),
        ("R2C_OIDC_ROLE_MAP", "{}", "R2C_OIDC_ROLE_MAP is required with R2C_OIDC_ISSUER"),
        ("R2C_OIDC_AUDIENCE", "", "R2C_OIDC_AUDIENCE is required with R2C_OIDC_ISSUER"),
        ("R2C_OIDC_ISSUER", "http://idp.example", "expected an https:// URL"),
        ("R2C_OIDC_ISSUER", "https://idp.example?x=1", "without query or fragment"),
        ("R2C_OIDC_LEEWAY_SECONDS", "3600", "R2C_OIDC_LEEWAY_SECONDS: Input should be less"),
        ("R2C_OIDC_ROLES_CLAIM", "a b", "R2C_OIDC_ROLES_CLAIM: String should match"),
    ],
)
def test_bad_oidc_settings_stop_the_start_with_a_clear_message(
    oidc_env: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    oidc_env.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_a_loopback_issuer_may_use_http(oidc_env: pytest.MonkeyPatch) -> None:
    oidc_env.setenv("R2C_OIDC_ISSUER", "http://127.0.0.1:9999")
    assert load_settings().oidc_issuer == "http://127.0.0.1:9999"


def test_without_an_issuer_there_is_no_oidc(oidc_env: pytest.MonkeyPatch) -> None:
    oidc_env.delenv("R2C_OIDC_ISSUER")
    assert OidcConfig.from_settings(load_settings()) is None


async def test_a_deeply_nested_header_is_a_401_not_a_crash(verifier: OidcVerifier) -> None:
    header = base64.urlsafe_b64encode(b"[" * 10_000).decode().rstrip("=")
    assert await reason_of(verifier, f"{header}.e30.c2ln") == "malformed"


@pytest.mark.parametrize("exp", [float("nan"), float("inf"), "tomorrow", True])
async def test_an_expiry_that_is_not_a_finite_number_is_refused(
    verifier: OidcVerifier, issuer: FakeIssuer, exp: Any
) -> None:
    assert await reason_of(verifier, issuer.token(exp=exp)) == "malformed"
