"""How configuration entries become environment variables: names, values, refused keys."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from core.configuration_env import InstanceConfig, env_name, env_value, key_problem, render
from core.errors import DependencyUnavailableError, InvalidInputError
from core.models.configuration import ConfigKey, ResolvedEntry, Scope, SecretRef


class UnreachableVault:
    """A secret store whose Vault is away: what render must report, never swallow."""

    async def write(self, path: str, value: Any) -> int:
        raise DependencyUnavailableError("Vault cannot be reached")

    async def read(self, path: str, version: int | None = None) -> Any:
        raise DependencyUnavailableError("Vault cannot be reached")

    async def check(self) -> None:
        raise DependencyUnavailableError("Vault cannot be reached")


def entry(key: str, value: Any = None, secret: SecretRef | None = None) -> ResolvedEntry:
    return ResolvedEntry(key=key, value=value, secret=secret, source=Scope(), version=1, revision=1)


@pytest.mark.parametrize(
    ("key", "name"),
    [("db.pool_size", "DB_POOL_SIZE"), ("log", "LOG"), ("a.b_c.d9", "A_B_C_D9")],
)
def test_a_key_becomes_its_upper_case_name_with_dots_as_underscores(key: str, name: str) -> None:
    assert env_name(key) == name


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("5", "5"),
        (5, "5"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ({"a": [1, 2], "b": "é"}, '{"a":[1,2],"b":"é"}'),
        (["x", 1], '["x",1]'),
    ],
)
def test_strings_pass_as_they_are_and_other_values_as_compact_json(value: Any, text: str) -> None:
    assert env_value(value) == text


@pytest.mark.parametrize("key", ["path", "ld_preload", "pythonpath", "node_options", "home"])
def test_a_key_whose_variable_is_denied_is_refused_saying_which_variable(key: str) -> None:
    problem = key_problem(key)
    assert problem is not None and env_name(key) in problem and "may not be set" in problem


@pytest.mark.parametrize("key", ["r2c_instance", "r2c.config_revision", "r2c_anything"])
def test_a_key_in_the_systems_own_r2c_namespace_is_refused(key: str) -> None:
    problem = key_problem(key)
    assert problem is not None and "R2C_" in problem


def test_an_ordinary_key_is_accepted() -> None:
    assert key_problem("db.pool_size") is None
    assert TypeAdapter(ConfigKey).validate_python("db.pool_size") == "db.pool_size"


def test_the_key_type_refuses_a_denied_key_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="LD_PRELOAD may not be set"):
        TypeAdapter(ConfigKey).validate_python("ld_preload")


async def test_render_maps_plain_entries_without_asking_vault() -> None:
    entries = [entry("db.pool_size", 5), entry("log.level", "info"), entry("flags", {"a": True})]
    assert await render(entries, UnreachableVault()) == {
        "DB_POOL_SIZE": "5",
        "LOG_LEVEL": "info",
        "FLAGS": '{"a":true}',
    }


async def test_render_reports_an_unreachable_vault_for_a_secret() -> None:
    secret = entry("db.password", secret=SecretRef(path="config/_/_/db.password", vault_version=1))
    with pytest.raises(DependencyUnavailableError):
        await render([secret], UnreachableVault())


async def test_render_refuses_two_keys_that_make_one_variable() -> None:
    with pytest.raises(InvalidInputError, match="both become DB_POOL"):
        await render([entry("db.pool", 1), entry("db_pool", 2)], UnreachableVault())


async def test_render_refuses_a_stored_key_that_is_now_denied() -> None:
    with pytest.raises(InvalidInputError, match="PATH may not be set"):
        await render([entry("path", "/tmp")], UnreachableVault())


async def test_render_refuses_a_value_with_a_nul_character() -> None:
    with pytest.raises(InvalidInputError, match="NUL"):
        await render([entry("name", "a\x00b")], UnreachableVault())


def test_the_variables_of_a_configuration_never_show_in_its_repr() -> None:
    config = InstanceConfig(revision=3, variables={"DB_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(config) and "revision=3" in repr(config)
