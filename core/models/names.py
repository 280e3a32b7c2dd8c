"""The names every model shares: validated once, here, because they become paths, workflow ids,
process arguments and environment variables.

None of them can hold `/`, `:` or `.` except where said, so a name never climbs out of a folder
(`R2C_HOME/infra/<component>/<environment>`) and ids built with those separators (`core/ids.py`)
never collide: component `a-b` in `c` and component `a` in `b-c` stay apart.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

COMPONENT_PATTERN = r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$"
ENVIRONMENT_PATTERN = r"^[a-z][a-z0-9-]{0,61}$"
SLOT_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
# ASCII only: `\w` would admit any Unicode letter.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"

ComponentName = Annotated[
    str, StringConstraints(pattern=COMPONENT_PATTERN, min_length=2, max_length=63)
]
EnvironmentName = Annotated[
    str, StringConstraints(pattern=ENVIRONMENT_PATTERN, min_length=1, max_length=62)
]
SlotName = Annotated[str, StringConstraints(pattern=SLOT_PATTERN, min_length=1, max_length=31)]
VersionLabel = Annotated[
    str, StringConstraints(pattern=VERSION_PATTERN, min_length=1, max_length=128)
]

# Variables that make a loader, an interpreter or a shell run code of the setter's choosing,
# or that redirect where programs are found. An instance runs as the worker's user, so
# whoever may set one of these may run anything as that user. Matched case-sensitively, as
# the programs read them; prefixes end with `_`.
DENIED_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "SHELL", "IFS", "ENV", "BASH_ENV", "CDPATH", "PS4", "PROMPT_COMMAND",
        "BROWSER", "EDITOR", "VISUAL", "PAGER",
        "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONWARNINGS", "PYTHONINSPECT",
        "PYTHONBREAKPOINT", "PYTHONEXECUTABLE", "PYTHONUSERBASE", "PYTHONSAFEPATH",
        "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS",
        "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYLIB", "RUBYOPT", "GEM_PATH", "GEM_HOME",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
        "GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF",
        "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH",
    }
)  # fmt: skip
DENIED_ENV_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "R2C_", "PYTHONMALLOC", "MALLOC_")


def env_var_problem(name: str) -> str | None:
    """Why `name` may not be set in an instance's environment, or None when it may."""
    if not re.fullmatch(ENV_VAR_PATTERN, name):
        return f"{name!r} is not a valid environment variable name (letters, digits and _)"
    if name in DENIED_ENV_NAMES or name.startswith(DENIED_ENV_PREFIXES):
        return (
            f"{name} may not be set: it makes a loader, interpreter or shell run code of the "
            "setter's choosing (see DENIED_ENV_NAMES in core/models/names.py)"
        )
    return None


def _env_names(env: dict[str, str]) -> dict[str, str]:
    for name, value in env.items():
        problem = env_var_problem(name)
        if problem:
            raise ValueError(problem)
        if "\x00" in value:
            raise ValueError(f"the value of {name} holds a NUL character")
        if len(value) > 32_768:
            raise ValueError(f"the value of {name} is longer than 32768 characters")
    if len(env) > 200:
        raise ValueError(f"{len(env)} variables; at most 200")
    return env


EnvVars = Annotated[dict[str, str], AfterValidator(_env_names)]
"""Environment variables set for an instance: valid names, none of the denied ones."""
