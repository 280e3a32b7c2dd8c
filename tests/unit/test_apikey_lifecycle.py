"""API key lifecycle rules: lifetimes and graces as users write them, the maximum lifetime
policy (setting and check), and when a key ends and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from core.db.apikeys import Standing, check_lifetime, standing
from core.db.tables import ApiKeyRow
from core.errors import InvalidInputError
from core.models.apikeys import ApiKeyCreate, ApiKeyRotate, Role
from core.settings import Settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_lifetimes_are_written_as_durations_and_bounded() -> None:
    assert ApiKeyCreate(name="k", expires_in="30d").expires_in == 30 * 86400
    assert ApiKeyCreate(name="k", expires_in="1h30m").expires_in == 5400
    assert ApiKeyCreate(name="k").expires_in is None
    for bad in ("0s", "3651d", "never", -1, float("inf"), "9" * 70):
        with pytest.raises(ValidationError):
            ApiKeyCreate(name="k", expires_in=bad)


def test_grace_is_zero_to_seven_days_default_one_hour() -> None:
    assert ApiKeyRotate().grace == 3600
    assert ApiKeyRotate(grace="0s").grace == 0
    assert ApiKeyRotate(grace="7d").grace == 7 * 86400
    for bad in ("7d1s", "-1s", "soon", float("nan")):
        with pytest.raises(ValidationError):
            ApiKeyRotate(grace=bad)
    with pytest.raises(ValidationError):
        ApiKeyRotate.model_validate({"grace": "1h", "key": "smuggled"})


def test_the_policy_setting_is_json_roles_to_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R2C_APIKEY_MAX_LIFETIME_DAYS", '{"admin": 90, "operator": 365}')
    assert Settings().apikey_max_lifetime_days == {Role.ADMIN: 90, Role.OPERATOR: 365}
    monkeypatch.setenv("R2C_APIKEY_MAX_LIFETIME_DAYS", "")
    assert Settings().apikey_max_lifetime_days == {}
    for bad in ("{", "[90]", '{"god": 1}', '{"admin": 0}', '{"admin": 3651}', '{"admin": true}'):
        monkeypatch.setenv("R2C_APIKEY_MAX_LIFETIME_DAYS", bad)
        with pytest.raises(ValidationError):
            Settings()


def test_the_policy_refuses_no_expiry_or_a_longer_one_for_listed_roles() -> None:
    policy = {Role.ADMIN: 90}
    check_lifetime(Role.ADMIN, 90 * 86400, policy)
    check_lifetime(Role.VIEWER, None, policy)
    check_lifetime(Role.ADMIN, None, None)
    with pytest.raises(InvalidInputError, match="never expire") as never:
        check_lifetime(Role.ADMIN, None, policy)
    assert never.value.hint and "90d" in never.value.hint
    with pytest.raises(InvalidInputError, match="within 90 days"):
        check_lifetime(Role.ADMIN, 90 * 86400 + 1, policy)


def _row(**values: object) -> ApiKeyRow:
    return ApiKeyRow(id="k", name="k", role="viewer", prefix="p", key_hash="h", **values)


def test_a_key_ends_at_its_expiry_or_its_grace_whichever_is_first() -> None:
    assert standing(_row()) == Standing(None, None)
    assert standing(_row()).ended(NOW) is None
    soon, later = NOW + timedelta(minutes=1), NOW + timedelta(hours=1)
    expiring = standing(_row(expires_at=soon))
    assert expiring.ended(NOW) is None and expiring.ended(soon) == "expired"
    rotated = standing(_row(expires_at=later, grace_until=soon))
    assert rotated.ended(soon) == "rotated"
    expires_first = standing(_row(expires_at=soon, grace_until=later))
    assert expires_first.ended(later) == "expired"
