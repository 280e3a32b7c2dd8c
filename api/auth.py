"""Authentication and role checks for the API's routes.

An API key is verified by `api.key_verifier` (cached, with revocation, expiry and failure
limits).

A bearer value shaped like a JWT (three base64url parts; an API key has no dot) is an OIDC token
instead: `core.oidc` verifies it against R2C_OIDC_ISSUER and maps its groups to a role. Either
way the result is a `Principal`, checked against the route's role by the same code below (see
docs/oidc.md for how a browser session would be one more source of it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth_audit import record_refusal
from api.key_verifier import KeyEnded, KeyVerifier
from api.scope_checks import enforce
from core.errors import (
    AuthenticationError,
    DependencyUnavailableError,
    PermissionDeniedError,
    RateLimitedError,
)
from core.models.apikeys import Principal, Role
from core.oidc import IssuerUnavailable, OidcConfig, OidcVerifier, TokenRejected, looks_like_jwt

_bearer = HTTPBearer(
    auto_error=False, description="Authorization: Bearer <API key or OIDC access token>"
)
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks that its role is at least `role`;
    `required_role` on it lets the OpenAPI document and the tests find the role of a route."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_header)],
    ) -> Principal:
        key = bearer.credentials if bearer is not None else header_key
        if not key:
            raise AuthenticationError(
                "an API key is required",
                hint="send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
                "`r2c up` writes the admin key to R2C_HOME/admin.key",
            )
        token = looks_like_jwt(key)
        principal = await (
            _token_principal(request, key) if token else _key_principal(request, key)
        )
        if not principal.role.allows(role):
            await record_refusal(
                request,
                "auth.denied",
                reason="role",
                key=None if token else key,
                principal=principal,
                role=principal.role.value,
                required=role.value,
            )
            who = f"token of {principal.name!r}" if token else f"key {principal.name!r}"
            raise PermissionDeniedError(
                f"this action needs the {role.value} role; {who} has {principal.role.value}",
                hint="ask an admin for a key (or a group in R2C_OIDC_ROLE_MAP) with a higher role",
            )
        request.state.principal = principal
        # Scoped callers: the route's target must be in scope too (api/scope_checks.py);
        # a refusal is a 403 audited as `auth.denied` with reason `scope`.
        await enforce(request, principal, role)
        return principal

    dependency.required_role = role  # type: ignore[attr-defined]
    return dependency


async def _key_principal(request: Request, key: str) -> Principal:
    verifier: KeyVerifier = request.app.state.keys
    address = request.client.host if request.client else "unknown"
    try:
        principal = await verifier.verify(key, address)
    except RateLimitedError:
        await record_refusal(request, "auth.failed", reason="rate_limited", key=key)
        raise
    except KeyEnded as ended:
        await record_refusal(request, "auth.failed", reason=f"key_{ended.reason}", key=key)
        if ended.reason == "rotated":
            raise AuthenticationError(
                "API key was rotated; use the new one",
                hint="the key that replaced it is listed by GET /api/v1/apikeys (replaced_by)",
            ) from None
        raise AuthenticationError(
            "API key expired",
            hint="ask an admin to rotate or re-create it (`r2c apikey create --expires-in`)",
        ) from None
    if principal is None:
        await record_refusal(request, "auth.failed", reason="invalid_or_revoked", key=key)
        raise AuthenticationError(
            "the API key is not valid or has been revoked",
            hint="create a new one with `r2c apikey create` or POST /api/v1/apikeys",
        )
    return principal


def _oidc(request: Request) -> OidcVerifier | None:
    """The app's token verifier, made on first use (None without R2C_OIDC_ISSUER); it keeps
    the issuer's keys for the life of the app."""
    state = request.app.state
    if not hasattr(state, "oidc"):
        config = OidcConfig.from_settings(state.settings)
        state.oidc = OidcVerifier(config) if config is not None else None
    verifier: OidcVerifier | None = state.oidc
    return verifier


async def _token_principal(request: Request, token: str) -> Principal:
    # The token itself is never passed on: not to the audit trail, not into an error.
    verifier = _oidc(request)
    if verifier is None:
        await record_refusal(request, "auth.failed", reason="token_not_accepted")
        raise AuthenticationError(
            "this API accepts no OIDC tokens (R2C_OIDC_ISSUER is not set)",
            hint="send an API key, or ask the operator to configure R2C_OIDC_ISSUER",
        )
    try:
        return await verifier.verify(token)
    except TokenRejected as err:
        await record_refusal(request, "auth.failed", reason=f"token_{err.reason}")
        raise AuthenticationError(err.message, hint=err.hint) from None
    except IssuerUnavailable as err:
        raise DependencyUnavailableError(
            f"the OIDC issuer's keys cannot be obtained to verify the token: {err}",
            hint="retry shortly; API keys keep working while the issuer is away",
        ) from None


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
