"""Components: what the platform deploys, and how each one runs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.models.health import ComponentHealthStatus
from core.models.names import ComponentName
from core.models.slo import SloSpec, SloStatus

COMMAND_PLACEHOLDERS = frozenset({"port", "version", "instance"})
MAX_DEPENDENCIES = 20
MAX_CONFIG_SCHEMA_BYTES = 64 * 1024
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.\-/]{0,61}[A-Za-z0-9])?$")
# `{{` and `}}` are literal braces; `{name}` a placeholder; any other brace is an error.
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def _placeholders(text: str) -> set[str]:
    """The placeholders of a command or env template.

    Only bare `{port}`, `{version}` and `{instance}` are accepted: a format spec or a
    conversion (`{port:>999999999}`, `{port!r}`) would let a definition build huge strings or
    call `repr`, and templates are filled by `fill_template`, which knows neither.
    """
    names = set()
    for match in _TEMPLATE_TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        field = match.group(1)
        if field is None:
            raise ValueError(
                f"{text!r} is not a valid template: a single {token!r} (double it for a literal)"
            )
        if any(c in field for c in ":!.[") or not field:
            raise ValueError(
                f"{{{field}}} in {text!r}: placeholders take no format spec, conversion, "
                "attribute or index; write exactly {port}, {version} or {instance}"
            )
        names.add(field)
    return names


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Replace `{port}`, `{version}`, `{instance}` with `values`, `{{`/`}}` with braces.

    Not `str.format`: values are inserted as they are, and nothing in the template can ask for
    padding, conversions or attribute access. Raises ValueError on anything else in braces.
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        field = match.group(1)
        if field is None or field not in values:
            raise ValueError(f"{token!r} in {template!r} is not a known placeholder")
        return values[field]

    return _TEMPLATE_TOKEN.sub(replace, template)


class HealthCheckSpec(BaseModel):
    """How an instance proves it is healthy: an HTTP GET that answers 2xx."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field("/health", pattern=r"^/", description="HTTP path probed on each instance")
    interval_seconds: float = Field(5.0, gt=0, le=3600)
    timeout_seconds: float = Field(2.0, gt=0, le=300)
    healthy_threshold: int = Field(1, ge=1, le=100, description="successes to become healthy")
    unhealthy_threshold: int = Field(3, ge=1, le=100, description="failures to become unhealthy")


class RuntimeSpec(BaseModel):
    """How the local provider runs an instance: a command template and its environment."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(
        ...,
        min_length=1,
        description="argv template; {port}, {version} and {instance} are filled in per instance",
        examples=[["r2c", "demo", "serve", "--port", "{port}", "--version", "{version}"]],
    )
    env: dict[str, str] = Field(default_factory=dict, description="environment variables")
    working_dir: str | None = None
    health_check: HealthCheckSpec = Field(default_factory=HealthCheckSpec)
    metrics_path: str | None = Field("/metrics", pattern=r"^/")
    replicas: int = Field(1, ge=1, le=100)
    router_port: int | None = Field(
        None, ge=1024, le=65535, description="stable port of the router; allocated if absent"
    )
    config_file: Literal["json"] | None = Field(
        None,
        description=(
            "also deliver the resolved configuration (key -> value, secrets included) as a "
            "0600 JSON file whose path the instance gets in R2C_CONFIG_FILE; null: environment "
            "variables only"
        ),
    )

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, command: list[str]) -> list[str]:
        for arg in command:
            unknown = _placeholders(arg) - COMMAND_PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"unknown placeholder(s) {sorted(unknown)} in {arg!r}; "
                    f"use only {{port}}, {{version}}, {{instance}} (double braces for a literal)"
                )
        if not command[0].strip():
            raise ValueError("the first element must name the program to run")
        return command

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            unknown = _placeholders(value) - COMMAND_PLACEHOLDERS
            if unknown:
                raise ValueError(f"unknown placeholder(s) {sorted(unknown)} in env {name}")
        return env

    @model_validator(mode="after")
    def _port_is_used(self) -> RuntimeSpec:
        used = set().union(*(_placeholders(a) for a in self.command))
        used |= set().union(*(_placeholders(v) for v in self.env.values()))
        if "port" not in used:
            raise ValueError(
                "the command or the environment must use {port}, so each instance listens "
                "on the port it is given"
            )
        return self


class DependencySpec(BaseModel):
    """Another component this one needs running, in the same environment, before it."""

    model_config = ConfigDict(extra="forbid")

    component: ComponentName
    version: str | None = Field(
        None,
        max_length=100,
        description="a version constraint (PEP 440 specifiers, e.g. `>=2.0`, `>=2,<3`); the "
        "dependency's serving version must satisfy it",
        examples=[">=2.0"],
    )

    @field_validator("version")
    @classmethod
    def _constraint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(
                f"{value!r} is not a version constraint; write e.g. '>=2.0' or '>=2,<3'"
            ) from None
        return value


class ComponentSpec(BaseModel):
    """What a client sends to register or replace a component."""

    model_config = ConfigDict(extra="forbid")

    name: ComponentName = Field(..., description="unique, DNS-label style")
    description: str = Field("", max_length=2000)
    owner: str = Field("", max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)
    runtime: RuntimeSpec
    config_schema: dict[str, Any] | None = Field(
        None,
        description="a JSON Schema (draft 2020-12) the component's effective configuration, "
        "an object {key: value}, must satisfy in every environment",
        examples=[{"type": "object", "properties": {"db.pool_size": {"type": "integer"}}}],
    )
    depends_on: list[DependencySpec] = Field(
        default_factory=list,
        max_length=MAX_DEPENDENCIES,
        description="components this one calls, deployed before it by a release; each one's "
        "router address reaches the instances as <NAME>_URL",
        examples=[[{"component": "api", "version": ">=2.0"}]],
    )
    slo: SloSpec | None = Field(
        None,
        description="SLOs on the router's metrics: `availability` (non-5xx answers) and/or "
        "`latency` (answered within `threshold`), each with an `objective` and a `window`",
        examples=[
            {
                "availability": {"objective": 0.999, "window": "30d"},
                "latency": {"objective": 0.99, "threshold": "300ms", "window": "30d"},
            }
        ],
    )

    @field_validator("config_schema")
    @classmethod
    def _valid_json_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        size = len(json.dumps(schema, separators=(",", ":")).encode())
        if size > MAX_CONFIG_SCHEMA_BYTES:
            raise ValueError(
                f"config_schema is {size} bytes as JSON; at most {MAX_CONFIG_SCHEMA_BYTES}"
            )
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as err:
            where = "/".join(str(p) for p in err.path) or "the top level"
            raise ValueError(
                f"config_schema is not a valid JSON Schema (draft 2020-12) at {where}: "
                f"{err.message[:300]}"
            ) from None
        return schema

    @model_validator(mode="after")
    def _dependencies_are_others(self) -> ComponentSpec:
        names = [d.component for d in self.depends_on]
        if self.name in names:
            raise ValueError(f"{self.name} cannot depend on itself")
        if len(set(names)) != len(names):
            raise ValueError("each dependency is listed once")
        return self

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not _LABEL_KEY.fullmatch(key):
                raise ValueError(f"label key {key!r} must be alphanumeric with - _ . / inside")
            if len(value) > 256:
                raise ValueError(f"label {key!r} is longer than 256 characters")
        return labels


class Component(ComponentSpec):
    """A registered component as the store keeps it."""

    id: str
    created_at: datetime
    updated_at: datetime
    revision: int = Field(description="increases by one on every change")
    health: ComponentHealthStatus | None = Field(
        None,
        description="the last health check's verdict (`state`, `since`, `checked_at`,"
        " `reason`); answered by the API, absent elsewhere",
    )
    slo_status: list[SloStatus] | None = Field(
        None,
        description="per declared SLO and environment with samples: objective, window, good "
        "and total requests, error budget remaining, burn rate over the last hour; answered "
        "by GET /api/v1/components/{id}",
    )
