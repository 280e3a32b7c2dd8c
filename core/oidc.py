"""OIDC bearer tokens: issuer discovery, a cached JWKS that follows key rotation, token checks
and the mapping of the token's groups to a role.

Only asymmetric algorithms are accepted (RS256, ES256, EdDSA), chosen from the token's header
before any key is touched: `alg: none` and HS256 (which, given the issuer's public key as an
HMAC secret, anyone could forge) never reach a verifier. The JWKS is fetched once and kept; a
token naming an unknown `kid` refetches it, at most once per `min_refetch_seconds`, so a flood
of invented kids costs the issuer one request per interval. A refetch replaces the whole set:
a key the issuer has withdrawn stops verifying at the next refetch (or after `max_age`).

Every refusal is a `TokenRejected` whose message says what is wrong with the token and never
repeats it; an issuer that cannot be reached while no keys are cached is `IssuerUnavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import httpx
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning
from joserfc.jwk import Key, import_key

from core.bounded_read import read_at_most
from core.models.apikeys import Principal, Role
from core.models.scopes import MAX_GRANTS, Grant
from core.settings import Settings

ACCEPTED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
# The key type (and curve) each accepted algorithm needs: a token may not pick another.
_KEY_OF_ALGORITHM = {"RS256": ("RSA", None), "ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
MAX_TOKEN_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024  # discovery document or JWKS
MAX_KEYS = 100
MAX_GROUPS = 1000
FETCH_TIMEOUT = httpx.Timeout(5.0)
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+:-]{0,199}$")


class TokenRejected(Exception):
    """The token is not accepted; `reason` is a stable short name for the audit trail."""

    def __init__(self, reason: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.hint = hint


class IssuerUnavailable(Exception):
    """The issuer's discovery document or keys cannot be fetched, and none are cached."""


class OidcPrincipal(Principal):
    """A caller identified by an OIDC token: `oidc:<preferred_username or sub>` in the audit
    trail. `key_id` is `oidc:<sub>`, stable for the person or client across tokens."""

    kind: Literal["oidc"] = "oidc"

    @property
    def initiator(self) -> str:
        return f"oidc:{self.name}"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    roles_claim: str
    role_map: dict[str, Role | Grant]
    leeway: int

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        if settings.oidc_issuer is None or settings.oidc_audience is None:
            return None
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            roles_claim=settings.oidc_roles_claim,
            role_map=dict(settings.oidc_role_map),
            leeway=settings.oidc_leeway_seconds,
        )


def looks_like_jwt(value: str) -> bool:
    """Three base64url parts separated by dots: what a JWS compact token looks like (an API
    key of this system never contains a dot)."""
    parts = value.split(".")
    return len(parts) == 3 and all(p and _SEGMENT.fullmatch(p) for p in parts[:2])


def _reject(reason: str, message: str, hint: str = "get a new token from the issuer") -> NoReturn:
    raise TokenRejected(reason, message, hint)


def _segment_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # deep nesting: not a 500
        value = None
    if not isinstance(value, dict):
        _reject("malformed", f"token {what} is not a base64url JSON object")
    return value


class OidcVerifier:
    """Turns a token into an `OidcPrincipal`, or raises `TokenRejected` / `IssuerUnavailable`."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        min_refetch_seconds: float = 30.0,
        max_age: float = 900.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._transport = transport  # tests only: an issuer inside the process
        self.min_refetch_seconds = min_refetch_seconds
        self.max_age = max_age
        self._clock = clock
        self._monotonic = monotonic
        self._jwks_uri: str | None = None
        self._keys: dict[str, Key] = {}
        self._fetched_at: float | None = None  # monotonic time the last fetch attempt ended
        self._loaded = False
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> OidcPrincipal:
        if len(token) > MAX_TOKEN_BYTES:
            _reject("malformed", f"token is longer than {MAX_TOKEN_BYTES} bytes")
        if not looks_like_jwt(token):
            _reject("malformed", "token is not a signed JWT (header.payload.signature)")
        header_segment, payload_segment, _ = token.split(".")
        header = _segment_json(header_segment, "header")
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGORITHMS:
            _reject(
                "algorithm",
                "token algorithm not accepted (only RS256, ES256 and EdDSA)",
                "configure the issuer to sign tokens for this API with RS256, ES256 or EdDSA",
            )
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= 256):
            _reject("malformed", "token header kid is not a short string")
        key = await self._key(kid, str(alg))
        try:
            with warnings.catch_warnings():
                # joserfc flags EdDSA as superseded by RFC 9864's names; it is still sound.
                warnings.simplefilter("ignore", SecurityWarning)
                jws.deserialize_compact(token, key, algorithms=[str(alg)])
        except BadSignatureError:
            _reject("signature", "token signature does not verify")
        except (JoseError, ValueError, TypeError):
            _reject("malformed", "token could not be read as a signed JWT")
        return self._principal(_segment_json(payload_segment, "payload"))

    async def _key(self, kid: str | None, alg: str) -> Key:
        now = self._monotonic()
        stale = self._fetched_at is None or now - self._fetched_at >= self.max_age
        if not self._loaded or stale:
            await self._refresh(keep_cache=self._loaded)
            if not self._loaded:
                raise IssuerUnavailable("the issuer's keys could not be fetched")
        key = self._find(kid)
        if key is None and now - (self._fetched_at or 0.0) >= self.min_refetch_seconds:
            # A rotated key the cache has not seen yet: one refetch, shared by concurrent callers.
            await self._refresh(keep_cache=True)
            key = self._find(kid)
        if key is None:
            _reject(
                "unknown_key",
                "token signed by an unknown key (its kid is not in the issuer's JWKS)",
                "get a new token; if it keeps happening, the issuer may have withdrawn its key",
            )
        kty, curve = _KEY_OF_ALGORITHM[alg]
        if key.key_type != kty or (curve is not None and key.get("crv") != curve):
            _reject("algorithm", "token algorithm does not match the type of its signing key")
        return key

    def _find(self, kid: str | None) -> Key | None:
        if kid is not None:
            return self._keys.get(kid)
        # A token without kid is accepted only from an issuer with a single key.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self, *, keep_cache: bool) -> None:
        started = self._monotonic()
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= started:
                return  # another request fetched (or failed to) while this one waited
            try:
                keys = await self._fetch_keys()
            except IssuerUnavailable:
                if keep_cache:
                    return  # the cached keys keep working while the issuer is away
                raise
            finally:
                self._fetched_at = self._monotonic()
            self._keys = keys
            self._loaded = True

    async def _fetch_keys(self) -> dict[str, Key]:
        async with httpx.AsyncClient(
            timeout=FETCH_TIMEOUT, follow_redirects=False, transport=self._transport
        ) as http:
            if self._jwks_uri is None:
                discovery_url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await _get_json(http, discovery_url, "discovery document")
                if document.get("issuer") != self.config.issuer:
                    raise IssuerUnavailable(
                        "the issuer's discovery document names another issuer than"
                        " R2C_OIDC_ISSUER (they must be equal, trailing slash included)"
                    )
                jwks_uri = document.get("jwks_uri")
                if not isinstance(jwks_uri, str) or not jwks_uri.startswith(
                    ("https://", "http://")
                ):
                    raise IssuerUnavailable("the issuer's discovery document has no jwks_uri")
                self._jwks_uri = jwks_uri
            jwks = await _get_json(http, self._jwks_uri, "JWKS")
        entries = jwks.get("keys")
        if not isinstance(entries, list):
            raise IssuerUnavailable("the issuer's JWKS has no list of keys")
        keys: dict[str, Key] = {}
        for entry in entries[:MAX_KEYS]:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            if entry.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # a symmetric key has no business in a public JWKS
            try:
                key = import_key(entry)
            except (JoseError, ValueError, TypeError):
                continue  # one unreadable key must not hide the others
            kid = entry.get("kid")
            keys[kid if isinstance(kid, str) else key.thumbprint()] = key
        return keys

    def _principal(self, claims: dict[str, Any]) -> OidcPrincipal:
        cfg = self.config
        if claims.get("iss") != cfg.issuer:
            _reject("issuer", "token issuer is not R2C_OIDC_ISSUER")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if cfg.audience not in audiences:
            _reject(
                "audience",
                "token audience is not this API (expected R2C_OIDC_AUDIENCE)",
                "request a token for this API's audience from the issuer",
            )
        now = self._clock()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)  # JSON's NaN would never expire
            ):
                _reject("malformed", f"token claim {name} is not a number")
        if exp is None:
            _reject("malformed", "token has no exp (expiry) claim")
        if now > exp + cfg.leeway:
            _reject("expired", "token expired")
        if nbf is not None and now + cfg.leeway < nbf:
            _reject("not_yet_valid", "token not yet valid (nbf is in the future)")
        if iat is not None and now + cfg.leeway < iat:
            _reject("not_yet_valid", "token issued in the future (iat): check the clocks")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= 255:
            _reject("malformed", "token has no usable sub (subject) claim")
        grants = self._grants(claims.get(cfg.roles_claim))
        if not grants:
            _reject(
                "no_role",
                "token grants no role: none of its groups is in R2C_OIDC_ROLE_MAP",
                f"ask an admin to add one of your groups (claim {cfg.roles_claim!r}) to the map",
            )
        role, scoped = role_and_grants(grants)
        username = claims.get("preferred_username")
        name = (
            next(
                (n for n in (username, sub) if isinstance(n, str) and _NAME.fullmatch(n)),
                None,
            )
            or "sub-" + base64.b32encode(str(sub).encode()[:20]).decode().rstrip("=").lower()
        )
        return OidcPrincipal(key_id=f"oidc:{sub}", name=name, role=role, grants=scoped)

    def _grants(self, value: Any) -> list[Grant]:
        return grants_of_groups(value, self.config.role_map)


def grants_of_groups(value: Any, role_map: dict[str, Role | Grant]) -> list[Grant]:
    """What a person's groups map to: a role (on everything) or a scoped grant each. Shared by
    OIDC tokens and the dashboard's SAML sign-in (api/ui/saml.py)."""
    groups = value.split() if isinstance(value, str) else value
    if not isinstance(groups, list):
        return []
    mapped = [role_map[g] for g in groups[:MAX_GROUPS] if isinstance(g, str) and g in role_map]
    grants = [m if isinstance(m, Grant) else Grant(role=m) for m in mapped]
    return list(dict.fromkeys(grants))  # one of each, in the order of the groups


def role_and_grants(grants: list[Grant]) -> tuple[Role, tuple[Grant, ...] | None]:
    """The principal's role and grants from its groups' grants (at least one)."""
    role = max((g.role for g in grants), key=lambda r: r.rank)
    # All groups unscoped: the highest role alone, as before scopes. Any scoped group:
    # the union of the groups' grants, so an unscoped group still reaches everything.
    scoped = None if all(g.unscoped for g in grants) else tuple(grants[:MAX_GRANTS])
    return role, scoped


async def _get_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    """GET a JSON object of at most MAX_DOCUMENT_BYTES; IssuerUnavailable on any failure."""
    try:
        async with http.stream("GET", url, headers={"Accept": "application/json"}) as resp:
            if resp.status_code != 200:
                raise IssuerUnavailable(f"the issuer's {what} answered HTTP {resp.status_code}")
            body = await read_at_most(resp, MAX_DOCUMENT_BYTES)
            if body is None:
                raise IssuerUnavailable(f"the issuer's {what} is over {MAX_DOCUMENT_BYTES} B")
    except httpx.HTTPError as err:
        raise IssuerUnavailable(
            f"the issuer's {what} cannot be fetched ({type(err).__name__})"
        ) from err
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise IssuerUnavailable(f"the issuer's {what} is not a JSON object")
    return value
