"""Scopes: what a grant covers (writes need the whole target, reads any part of it), the
bounds of a scope, the principal's check and its message, a key's grants, and OIDC groups
mapped to scoped roles (the union of the token's groups)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import typer
from pydantic import ValidationError

from api.scope_checks import kind_of
from cli.keys import parse_scope
from core.errors import PermissionDeniedError
from core.models.apikeys import ApiKeyCreate, Principal, Role
from core.models.scopes import Grant, ScopeSpec, grants_for
from core.oidc import OidcConfig, OidcVerifier
from core.settings import SettingsError, load_settings
from tests.unit.test_oidc import CONFIG, Clock, FakeIssuer

DEMO_STAGING = Grant(role=Role.OPERATOR, components=("demo",), environments=("staging",))


@pytest.mark.parametrize(
    ("role", "component", "environment", "write", "covered"),
    [
        (Role.OPERATOR, "demo", "staging", True, True),
        (Role.VIEWER, "demo", "staging", False, True),  # a higher role includes the lower
        (Role.ADMIN, "demo", "staging", True, False),
        (Role.OPERATOR, "web", "staging", True, False),
        (Role.OPERATOR, "demo", "production", True, False),
        # None: every component / environment. A write needs all of them...
        (Role.OPERATOR, "demo", None, True, False),
        (Role.OPERATOR, None, "staging", True, False),
        # ... a read, any part: demo's definition, staging's policy.
        (Role.VIEWER, "demo", None, False, True),
        (Role.VIEWER, None, "staging", False, True),
        (Role.VIEWER, "web", None, False, False),
        (Role.VIEWER, None, None, False, True),
    ],
)
def test_what_a_grant_covers(
    role: Role, component: str | None, environment: str | None, write: bool, covered: bool
) -> None:
    assert DEMO_STAGING.covers(role, component, environment, write=write) is covered


def test_a_wildcard_grant_covers_whole_targets() -> None:
    demo_everywhere = Grant(role=Role.ADMIN, components=("demo",))
    assert demo_everywhere.covers(Role.ADMIN, "demo", None, write=True)
    assert not demo_everywhere.covers(Role.ADMIN, None, "staging", write=True)
    assert Grant(role=Role.VIEWER).unscoped and not demo_everywhere.unscoped


@pytest.mark.parametrize(
    "scope",
    [
        {"components": ["Demo"]},  # not a component name
        {"environments": ["staging", "*"]},  # '*' is alone or absent
        {"components": []},
        {"components": [f"c{i}" for i in range(51)]},
        {"components": ["demo"], "roles": ["admin"]},  # unknown field
        {"environments": ["x" * 64]},
    ],
)
def test_a_scope_out_of_bounds_is_refused(scope: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ScopeSpec.model_validate(scope)


def test_a_key_has_at_most_nineteen_scopes() -> None:
    ApiKeyCreate(name="k", scopes=[ScopeSpec()] * 19)
    with pytest.raises(ValidationError):
        ApiKeyCreate(name="k", scopes=[ScopeSpec()] * 20)


def test_the_command_lines_scope() -> None:
    assert parse_scope(None, None) is None
    assert parse_scope(["demo"], None) == ScopeSpec(components=("demo",))
    with pytest.raises(typer.BadParameter, match="'Not_A_Name' is not a valid component"):
        parse_scope(["Not_A_Name"], ["staging"])


def test_a_keys_grants() -> None:
    scopes = [ScopeSpec(components=("demo", "demo"), environments=("staging",))]
    assert grants_for(Role.OPERATOR, None, read_everything=True) is None
    narrow = grants_for(Role.OPERATOR, scopes, read_everything=False)
    assert narrow == (DEMO_STAGING,)
    wide = grants_for(Role.OPERATOR, scopes, read_everything=True)
    assert wide == (DEMO_STAGING, Grant(role=Role.VIEWER))


def test_the_principal_check_names_the_target_and_the_scope() -> None:
    unscoped = Principal(key_id="1", name="ops", role=Role.OPERATOR)
    unscoped.check_scope(Role.OPERATOR, "web", "production", write=True)
    scoped = unscoped.model_copy(update={"grants": (DEMO_STAGING, Grant(role=Role.VIEWER))})
    scoped.check_scope(Role.OPERATOR, "demo", "staging", write=True)
    scoped.check_scope(Role.VIEWER, "web", "production", write=False)
    assert scoped.reads_everything
    with pytest.raises(PermissionDeniedError) as refused:
        scoped.check_scope(Role.OPERATOR, "web", "staging", write=True)
    message = refused.value.message
    assert "component web in environment staging" in message and "apikey:ops" in message
    assert "operator on components demo in environments staging" in message
    assert refused.value.details["reason"] == "scope"
    # The role still comes first: scopes never raise a key above its role.
    assert not scoped.may(Role.ADMIN, "demo", "staging", write=True)


def test_a_scoped_principal_round_trips_through_json() -> None:
    scoped = Principal(key_id="1", name="ops", role=Role.OPERATOR, grants=(DEMO_STAGING,))
    assert Principal.model_validate_json(scoped.model_dump_json()) == scoped
    assert not scoped.reads_everything


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/api/v1/apikeys", "global"),
        ("GET", "/api/v1/components", "list"),
        ("PUT", "/api/v1/components/{component_id}", "component"),
        (
            "DELETE",
            "/api/v1/components/{component_id}/environments/{environment}",
            "component-environment",
        ),  # fmt: skip
        ("POST", "/api/v1/deployments/{deployment_id}/{action}", "deployment"),
        ("PUT", "/api/v1/policies/{environment}", "environment"),
        ("GET", "/api/v1/configuration/{key}/versions", "component-environment"),
        ("POST", "/api/v1/schedules/{schedule_id}/trigger", "schedule"),
        ("GET", "/api/v1/some-new-route", "global"),  # the strictest until it says otherwise
    ],
)
def test_the_kind_of_a_route(method: str, path: str, kind: str) -> None:
    assert kind_of(method, path) == kind


SCOPED_CONFIG = OidcConfig(
    issuer=CONFIG.issuer,
    audience=CONFIG.audience,
    roles_claim="groups",
    role_map={
        "readers": Role.VIEWER,
        "ops": Role.ADMIN,
        "demo-staging": DEMO_STAGING,
        "web-admins": Grant(role=Role.ADMIN, components=("web",)),
    },
    leeway=60,
)


@pytest.mark.parametrize(
    ("groups", "role", "grants"),
    [
        (["readers", "ops"], Role.ADMIN, None),  # unscoped groups: the highest role alone
        (["demo-staging"], Role.OPERATOR, (DEMO_STAGING,)),
        (["demo-staging", "readers"], Role.OPERATOR, (DEMO_STAGING, Grant(role=Role.VIEWER))),
        (
            ["web-admins", "demo-staging", "web-admins"],
            Role.ADMIN,
            (Grant(role=Role.ADMIN, components=("web",)), DEMO_STAGING),
        ),
    ],
)
async def test_a_tokens_grants_are_the_union_of_its_groups(
    groups: list[str], role: Role, grants: tuple[Grant, ...] | None
) -> None:
    issuer, clock = FakeIssuer(), Clock()
    verifier = OidcVerifier(
        SCOPED_CONFIG, clock=clock, monotonic=clock, transport=httpx.MockTransport(issuer.handle)
    )
    principal = await verifier.verify(issuer.token(groups=groups))
    assert principal.role is role and principal.grants == grants


def test_the_role_map_setting_takes_scoped_groups(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("R2C_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("R2C_OIDC_ISSUER", CONFIG.issuer)
    monkeypatch.setenv("R2C_OIDC_AUDIENCE", "r2c-api")
    monkeypatch.setenv(
        "R2C_OIDC_ROLE_MAP",
        '{"admins": "admin", "ci": {"role": "operator", "components": ["demo"],'
        ' "environments": ["staging"]}}',
    )
    role_map = load_settings().oidc_role_map
    assert role_map == {"admins": Role.ADMIN, "ci": DEMO_STAGING}
    monkeypatch.setenv("R2C_OIDC_ROLE_MAP", '{"ci": {"role": "operator", "components": ["A"]}}')
    with pytest.raises(SettingsError):
        load_settings()
