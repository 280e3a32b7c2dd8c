"""Every route against every kind of caller: no key, a revoked key, and each role, by API key
and by OIDC token (from an issuer running in the test), plus an expired token.

The routes come from the app itself and the role each needs from its OpenAPI document
(`x-required-role`), so a new route is checked the day it is added: 401 without a valid key,
403 below its role, and neither at or above it (the request itself may still be refused: the
ids here name nothing, and no body is sent).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api.openapi import ROLE_EXTENSION
from core.models.apikeys import Role
from tests.integration.oidc_issuer import AUDIENCE, Issuer, running_issuer
from tests.integration.system import System, api_operations

PATH_VALUES = {"environment": "dev", "action": "promote"}
QUERY = {"/api/v1/deployments/revisions": "?component=demo&environment=dev"}
CALLERS = (
    "none",
    "revoked",
    "viewer",
    "operator",
    "admin",
    "token-expired",
    "token-viewer",
    "token-operator",
    "token-admin",
)
UNAUTHENTICATED = ("none", "revoked", "token-expired")
# Routes whose credential is a signature over the body, not a key (webhook deliveries).
SIGNED = {"/api/v1/webhooks/{source}"}


def _url(path: str) -> str:
    filled = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "nothing-here"), path)
    return filled + QUERY.get(path, "")


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as (running, _):
        yield running


@pytest.fixture
async def system(make_system: Callable[..., Any], issuer: Issuer) -> System:
    """The system, also accepting the test issuer's tokens: group rbac-<role> gives <role>."""
    role_map = {f"rbac-{role.value}": role.value for role in Role}
    built: System = await make_system(
        oidc_issuer=issuer.url, oidc_audience=AUDIENCE, oidc_role_map=role_map
    )
    return built


async def test_every_route_answers_each_caller_as_its_documented_role_says(
    system: System, issuer: Issuer
) -> None:
    app = system.http._transport.app  # type: ignore[attr-defined]
    schema = app.openapi()
    keys: dict[str, str | None] = {"none": None, "admin": system.admin_key}
    for role in ("viewer", "operator"):
        keys[role] = await system.key(role, f"rbac-{role}")
    keys["revoked"] = await system.key("viewer", "rbac-revoked")
    for role in Role:
        keys[f"token-{role.value}"] = issuer.mint(groups=[f"rbac-{role.value}"])
    keys["token-expired"] = issuer.mint(groups=["rbac-admin"], exp=1_000_000, iat=None, nbf=None)
    assert (
        await system.http.delete("/api/v1/apikeys/rbac-revoked", headers=system.auth())
    ).status_code == 200

    checked, wrong = 0, []
    operations = api_operations(app)
    assert len(operations) >= 20
    for method, path, _ in operations:
        documented = schema["paths"][path][method.lower()].get(ROLE_EXTENSION)
        needed = Role(documented) if documented else None
        for caller in CALLERS:
            key = keys[caller]
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            resp = await system.http.request(method, _url(path), headers=headers)
            if needed is None:
                expected = "not 401/403"
                ok = resp.status_code not in (401, 403)
            elif caller in UNAUTHENTICATED:
                expected, ok = "401", resp.status_code == 401
            elif not Role(caller.removeprefix("token-")).allows(needed):
                expected, ok = "403", resp.status_code == 403
            else:
                expected = "not 401/403"
                ok = resp.status_code not in (401, 403)
            checked += 1
            if not ok:
                wrong.append(
                    f"{method} {path} as {caller}: {resp.status_code}, expected {expected}"
                )
    assert not wrong, "\n".join(wrong)
    assert checked == len(operations) * len(CALLERS)
    print(f"{len(operations)} routes x {len(CALLERS)} callers = {checked} checks")


async def test_every_api_route_documents_its_role_and_error_statuses(system: System) -> None:
    schema = system.http._transport.app.openapi()  # type: ignore[attr-defined]
    error_ref = "#/components/schemas/ErrorBody"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if path in SIGNED:
                assert "401" in responses and ROLE_EXTENSION not in operation, (method, path)
            elif path.startswith("/api/v1/"):
                assert operation.get(ROLE_EXTENSION), (method, path)
                assert {"401", "429", "503"} <= set(responses), (method, path)
            for status, response in responses.items():
                if int(status) >= 400 and path != "/ready":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == error_ref, (method, path, status)
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
