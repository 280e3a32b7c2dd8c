"""What the local provider hands to a process it starts: its argv and its environment.

An instance runs the deployer's code as the worker's user; it gets only what it needs, never
the worker's own environment, which holds credentials (AWS_*, PGPASSWORD, GITHUB_TOKEN,
VAULT_TOKEN, ...). Templates of the component's definition are filled by `fill_template`
(bare placeholders only); a deployment's overrides are taken literally.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from core.configuration_env import (
    FILE_VARIABLE,
    NO_CONFIGURATION,
    REVISION_VARIABLE,
    InstanceConfig,
)
from core.models.components import RuntimeSpec, fill_template
from core.tracing import is_enabled

# Passed on from the worker: where programs are, whose they are, language and time zone, and
# where temporary files go. Nothing else, so that a secret added to the worker's environment
# tomorrow never reaches an instance. SHELL is left out on purpose: programs that need a
# shell use /bin/sh, and the login shell of the worker's user is no business of a service.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
# Our own programs (the router, `r2c ...` commands) must import this installation as the
# worker does, which may take PYTHONPATH.
OWN_PROGRAM_ENV = ("PYTHONPATH",)
# The router's tracing configuration (see `router_env`).
TRACING_ENV_PREFIXES = ("OTEL_", "JAEGER_ENDPOINT", "R2C_ROUTER_TRACE")
# The width of the router's sample buckets (router/samples.py BUCKET_SECONDS_ENV), passed on
# so that a worker's setting reaches the routers it starts (docs/router-samples.md).
ROUTER_ENV = ("R2C_ROUTER_SAMPLE_SECONDS",)


def cli_argv(*args: str) -> list[str]:
    """This installation's `r2c`, whatever is on PATH."""
    return [sys.executable, "-m", "cli", *args]


def inherited_env(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """The worker's variables that every process may have (`INHERITED_ENV`, plus `extra`)."""
    return {k: os.environ[k] for k in (*INHERITED_ENV, *extra) if k in os.environ}


def instance_argv(runtime: RuntimeSpec, values: Mapping[str, str]) -> list[str]:
    """The component's command with its placeholders filled in."""
    argv = [fill_template(arg, values) for arg in runtime.command]
    if argv[0] == "r2c":
        argv = cli_argv(*argv[1:])
    return argv


def instance_env(
    runtime: RuntimeSpec,
    overrides: Mapping[str, str],
    values: Mapping[str, str],
    target_dir: Path,
    config: InstanceConfig = NO_CONFIGURATION,
    config_file: Path | None = None,
    dependencies: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Allowed worker variables < where the dependencies are (`<NAME>_URL`, see
    `dependency_urls`) < the component's env (templates) < the configuration <
    the set's overrides (literal) < R2C_INSTANCE and R2C_TARGET, which recognise the process
    later, R2C_CONFIG_REVISION, which tells the app (and a test) what it runs, and
    R2C_CONFIG_FILE, the rendered file of a component that asked for one."""
    own = runtime.command[0] == "r2c"
    env = inherited_env(OWN_PROGRAM_ENV if own else ())
    env.update(dependencies or {})
    env.update({k: fill_template(v, values) for k, v in runtime.env.items()})
    env.update(config.variables)
    env.update(overrides)
    env.update(R2C_INSTANCE=values["instance"], R2C_TARGET=str(target_dir))
    if config.revision is not None:
        env[REVISION_VARIABLE] = str(config.revision)
    if config_file is not None:
        env[FILE_VARIABLE] = str(config_file)
    return env


def dependency_variable(name: str) -> str:
    """The variable that tells an instance where the dependency `name` is: `API_URL` for
    `api`, `DB_MIGRATE_URL` for `db-migrate` (component names are lower-case letters, digits
    and dashes, so the result is always a valid variable name)."""
    return name.upper().replace("-", "_") + "_URL"


def router_env(target_dir: Path) -> dict[str, str]:
    """The router's environment: the allowed variables and its target's marker, and, when
    this worker traces, its tracing configuration (OTEL_*, JAEGER_ENDPOINT, R2C_ROUTER_TRACE*),
    so the router's spans go where the worker's go. A router keeps the environment it was
    started with: a worker restarted with other tracing settings changes new routers only."""
    env = inherited_env((*OWN_PROGRAM_ENV, *ROUTER_ENV))
    env["R2C_TARGET"] = str(target_dir)
    if is_enabled():
        env.update(
            (name, value)
            for name, value in os.environ.items()
            if name.startswith(TRACING_ENV_PREFIXES)
        )
    return env
