"""OIDC tokens verified once for every API replica (with REDIS_URL): a token's principal is
kept, by the token's digest, until the token expires or for `R2C_REDIS_CACHE_SECONDS`,
whichever comes first, in this process and in Redis (api/shared_auth.py). A replica that has
not fetched the issuer's keys yet accepts a token another one verified.

The digest covers the OIDC settings too (issuer, audience, role map...): replicas configured
differently, during a change of the role map, never take each other's principals. A token is
never revoked before its expiry (OIDC has no such thing here); a signing key the issuer
withdraws stops the tokens it signed once their cached verification ends (at most the cache
time), where a single replica would see it at its next JWKS refetch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import time
from collections import OrderedDict
from typing import Any

from api.shared_auth import SharedAuth
from core.oidc import MAX_TOKEN_BYTES, OidcConfig, OidcPrincipal, OidcVerifier

MAX_LOCAL = 10_000  # tokens remembered in process at most; the oldest go first


class SharedTokenVerifier(OidcVerifier):
    """An `OidcVerifier` that asks this process's cache, then Redis, before verifying."""

    def __init__(self, config: OidcConfig, shared: SharedAuth, **options: Any) -> None:
        super().__init__(config, **options)
        self._shared = shared
        self._salt = hashlib.sha256(repr(config).encode()).hexdigest()
        self._local: OrderedDict[str, tuple[OidcPrincipal, float]] = OrderedDict()

    async def verify(self, token: str) -> OidcPrincipal:
        if len(token) > MAX_TOKEN_BYTES:
            return await super().verify(token)  # refused there, with its message
        digest = hashlib.sha256(f"{self._salt}\n{token}".encode()).hexdigest()
        now = time.time()
        hit = self._local.get(digest)
        if hit is not None:
            if now < hit[1]:
                return hit[0]
            del self._local[digest]
        shared = await self._shared.load_token(digest)
        if shared is not None:
            principal, until = shared
            if now < until and isinstance(principal, OidcPrincipal):
                self._remember(digest, principal, until)
                return principal
        principal = await super().verify(token)
        exp = _expiry(token)
        if exp is not None:
            until = min(exp, now + self._shared.ttl)
            if until > now:
                self._remember(digest, principal, until)
                await self._shared.store_token(digest, principal, until)
        return principal

    def _remember(self, digest: str, principal: OidcPrincipal, until: float) -> None:
        self._local[digest] = (principal, until)
        self._local.move_to_end(digest)
        while len(self._local) > MAX_LOCAL:
            self._local.popitem(last=False)


def _expiry(token: str) -> float | None:
    """The `exp` of a token that has just been verified (so its payload is well formed)."""
    try:
        segment = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, binascii.Error, ValueError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)
