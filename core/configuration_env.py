"""How configuration entries become an instance's environment variables.

The mapping is fixed and documented (docs/configuration.md): the key `db.pool_size` becomes
`DB_POOL_SIZE` (upper-case, `.` -> `_`); a string value is passed as it is, anything else as
compact JSON (`5`, `true`, `{"a":1}`). Secret values are read from Vault here, by path and
Vault version, at the edge: in the activity that starts the instances, never earlier, so no
value travels through the store, a workflow payload or a log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import DependencyUnavailableError, InvalidInputError
from core.models.names import env_var_problem
from core.secrets import SecretStore

if TYPE_CHECKING:
    from core.models.configuration import ResolvedEntry

# The system's own variables (R2C_INSTANCE, R2C_CONFIG_REVISION, ...) are not configuration.
RESERVED_PREFIX = "R2C_"
# The variable an instance reads to know which configuration revision it runs.
REVISION_VARIABLE = "R2C_CONFIG_REVISION"
# The variable holding the path of the rendered file, for a component that asks for one.
FILE_VARIABLE = "R2C_CONFIG_FILE"


def env_name(key: str) -> str:
    """`db.pool_size` -> `DB_POOL_SIZE`."""
    return key.upper().replace(".", "_")


def env_value(value: Any) -> str:
    """A string as it is; any other JSON value as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def key_problem(key: str) -> str | None:
    """Why `key` cannot be configuration (its variable is refused), or None when it can."""
    name = env_name(key)
    if name.startswith(RESERVED_PREFIX):
        return (
            f"the key {key!r} would set {name}; variables starting with {RESERVED_PREFIX} are "
            "the system's own (R2C_INSTANCE, R2C_CONFIG_REVISION, ...): choose another key"
        )
    problem = env_var_problem(name)
    if problem:
        return f"the key {key!r} becomes the environment variable {name}: {problem}"
    return None


@dataclass(frozen=True)
class InstanceConfig:
    """What an instance set runs with: the configuration revision (None: no configuration)
    and the rendered variables. The variables hold secret values, so they never appear in a
    repr, and a provider keeps only the revision.

    `resolved=False`: Vault could not be read. The provider may keep a set that already runs
    this revision as it is, but must start no instance: it raises `SecretsNeededError`."""

    revision: int | None = None
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    resolved: bool = True
    # key -> value (JSON values as they are, secrets read), for a component that asks for
    # its configuration as a file (RuntimeSpec.config_file).
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)


class SecretsNeededError(DependencyUnavailableError):
    """An instance must start, and its configuration's secrets could not be read."""


NO_CONFIGURATION = InstanceConfig()


async def resolve(
    revision: int, entries: Iterable[ResolvedEntry], secrets: SecretStore
) -> InstanceConfig:
    """What a set of configuration revision `revision` runs with: its variables and its
    values (for the rendered file), each secret read from Vault once. Raises as `render`."""
    values: dict[str, Any] = {}
    variables = await render(entries, secrets, values)
    return InstanceConfig(revision=revision, variables=variables, values=values)


async def render(
    entries: Iterable[ResolvedEntry],
    secrets: SecretStore,
    values: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The environment variables of `entries`, secret values read from `secrets` (Vault);
    `values`, when given, receives each key's value as it is (key -> JSON value).

    Raises `DependencyUnavailableError` while Vault cannot be reached, `NotFoundError` for a
    secret version Vault no longer has, and `InvalidInputError` for an entry that cannot be a
    variable (a key stored before keys were checked, two keys that make one name, a value
    holding a NUL character). No message carries a value.
    """
    variables: dict[str, str] = {}
    keys: dict[str, str] = {}
    for entry in entries:
        problem = key_problem(entry.key)
        if problem:
            raise InvalidInputError(
                problem, hint=f"DELETE /api/v1/configuration/{entry.key} and use another key"
            )
        name = env_name(entry.key)
        if name in keys:
            raise InvalidInputError(
                f"the keys {keys[name]!r} and {entry.key!r} both become {name}",
                hint="delete or rename one of them (`.` and `_` map to the same `_`)",
            )
        keys[name] = entry.key
        if entry.secret is not None:
            value = await secrets.read(entry.secret.path, entry.secret.vault_version)
        else:
            value = entry.value
        text = env_value(value)
        if "\x00" in text:
            raise InvalidInputError(
                f"the value of {entry.key!r} holds a NUL character, which no environment "
                "variable can carry",
                hint=f"PUT /api/v1/configuration/{entry.key} with a value without it",
            )
        variables[name] = text
        if values is not None:
            values[entry.key] = value
    return variables
