"""`r2c apply -f FILE`: create or update what a YAML file declares, through the API.

Kinds: `Component`, `Policy`, `ConfigurationEntry` and `Schedule`. Every document is checked
first, against the same models the API validates with (core/models): one invalid document and
nothing is applied. Then the objects are applied kind by kind — components first (the others
name them), then policies, configuration entries and schedules — each in the file's order,
with one line per object: `component/demo created`, `... configured`, `... unchanged`.

A secret configuration value never appears in the file: it is a reference the CLI resolves
when it applies (`env:NAME`, a variable of the shell that runs `r2c apply`; `file:PATH`, a
file's contents). The configuration API keeps secrets in its own Vault and takes their values,
so a `vault:` reference (or any literal) is refused before anything is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import typer
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from cli.api_client import ApiClient, ApiError
from cli.strategy import UsageError

MAX_APPLY_BYTES = 2_000_000
MAX_DOCUMENTS = 200
MAX_SECRET_BYTES = 64 * 1024
ORDER = ("Component", "Policy", "ConfigurationEntry", "Schedule")
SECRET_REFERENCES = "env:NAME (a variable of this shell) or file:PATH"


def _p(part: str) -> str:
    return quote(part, safe="")


@dataclass
class Item:
    """One object to apply: what it is called, how to read it and how to write it."""

    kind: str
    label: str  # component/demo, configuration/db.pool_size@demo/staging, ...
    path: str  # GET: what the API holds (404: nothing)
    body: dict[str, Any]
    model: type[BaseModel] | None  # compares what is held with `body`; None: never equal
    create: tuple[str, str]  # method and path when it does not exist
    update: tuple[str, str]
    held: Callable[[dict[str, Any]], dict[str, Any] | None] = field(default=lambda held: held)
    note: str = ""


def read_documents(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes() if str(path) != "-" else typer.get_binary_stream("stdin").read()
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror}") from None
    if len(raw) > MAX_APPLY_BYTES:
        raise UsageError(f"{path} is larger than {MAX_APPLY_BYTES} bytes")
    try:
        docs = [d for d in yaml.safe_load_all(raw) if d is not None]
    except yaml.YAMLError as err:
        raise UsageError(f"{path} is not YAML: {err}") from None
    if len(docs) > MAX_DOCUMENTS:
        raise UsageError(f"{path}: at most {MAX_DOCUMENTS} documents")
    return docs


def _problems(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in err.errors()[:5]
    )


def _component(spec: dict[str, Any]) -> list[Item]:
    from core.models.components import ComponentSpec

    checked = ComponentSpec.model_validate(spec)
    path = f"/api/v1/components/{_p(checked.name)}"
    return [Item("Component", f"component/{checked.name}", path, spec, ComponentSpec,
                 ("POST", "/api/v1/components"), ("PUT", path))]  # fmt: skip


def _policy(doc: dict[str, Any], spec: dict[str, Any]) -> list[Item]:
    from core.models.names import EnvironmentName
    from core.models.policies import PolicySpec

    env = TypeAdapter(EnvironmentName).validate_python(doc.get("environment"))
    PolicySpec.model_validate(spec)
    path = f"/api/v1/policies/{_p(env)}"
    return [Item("Policy", f"policy/{env}", path, spec, PolicySpec, ("PUT", path), ("PUT", path))]


def resolve_secret(reference: Any) -> str:
    """The value a secret reference points at; a literal (or a Vault path) is refused."""
    if not isinstance(reference, str) or not reference.startswith(("env:", "file:")):
        if isinstance(reference, str) and reference.startswith("vault:"):
            raise UsageError(
                "a secret as a vault: reference: the configuration API keeps secrets in its own"
                f" Vault and takes their values; give {SECRET_REFERENCES}"
            )
        raise UsageError(
            f"a secret's value is a reference, never the secret itself: {SECRET_REFERENCES}"
        )
    scheme, _, where = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(where)
        if not where or value is None:
            raise UsageError(f"secret reference {reference}: no such variable in this shell")
        return value
    try:
        data = Path(where).read_bytes()
    except OSError as err:
        raise UsageError(f"secret reference {reference}: {err.strerror}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise UsageError(f"secret reference {reference}: over {MAX_SECRET_BYTES} bytes")
    return data.decode().rstrip("\n")


def _configuration(spec: dict[str, Any]) -> list[Item]:
    """One entry per scope: `value` at `component`/`environment` (either may be absent), or
    `values` by environment (`{staging: 10, production: 20}`), each at that environment."""
    from core.models.configuration import ConfigKey, ConfigWrite

    known = {"key", "component", "environment", "value", "values", "secret", "description"}
    if unknown := sorted(set(spec) - known):
        raise UsageError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    key = TypeAdapter(ConfigKey).validate_python(spec.get("key"))
    has_value, has_values = "value" in spec, "values" in spec
    if has_value == has_values:
        raise UsageError("give `value` (one scope) or `values` (by environment), one of them")
    if has_values:
        values = spec["values"]
        if not isinstance(values, dict) or not values:
            raise UsageError("`values` maps environments to values: {staging: 10}")
        if "environment" in spec:
            raise UsageError("`values` names the environments: leave `environment` out")
        scoped: list[tuple[Any, Any]] = [(str(env), v) for env, v in values.items()]
    else:
        scoped = [(spec.get("environment"), spec["value"])]
    secret = spec.get("secret", False)
    items = []
    for env, value in scoped:
        scope = {"component": spec.get("component"), "environment": env}
        scope = {k: v for k, v in scope.items() if v is not None}
        real = resolve_secret(value) if secret is True else value
        body = {"value": real, "scope": scope, "secret": secret,
                "description": spec.get("description", "")}  # fmt: skip
        checked = ConfigWrite.model_validate(body)
        where = f"{checked.scope.component or '_'}/{checked.scope.environment or '_'}"
        query = urlencode(checked.scope.model_dump(exclude_none=True))
        path = f"/api/v1/configuration/{_p(key)}" + (f"?{query}" if query else "")
        put = ("PUT", f"/api/v1/configuration/{_p(key)}")
        items.append(Item(
            "ConfigurationEntry", f"configuration/{key}@{where}", path, body,
            None if checked.secret else ConfigWrite, put, put,
            held=_at_scope(checked.scope.model_dump(mode="json")),
            note=" (a secret: always written, it cannot be compared)" if checked.secret else "",
        ))  # fmt: skip
    return items


def _at_scope(scope: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """GET answers the value that applies, maybe from a wider scope: only the entry at
    exactly this scope is what the file sets (else it is created here)."""

    def held(entry: dict[str, Any]) -> dict[str, Any] | None:
        source = entry.get("source") or {}
        same = all(source.get(k) == scope.get(k) for k in ("component", "environment"))
        if not same:
            return None
        return {"value": entry.get("value"), "scope": scope, "secret": entry.get("secret"),
                "description": entry.get("description", "")}  # fmt: skip

    return held


def _schedule(spec: dict[str, Any]) -> list[Item]:
    from core.models.schedules import ScheduleCreate, ScheduleDefinition

    checked = ScheduleCreate.model_validate(spec)
    definition = {k: v for k, v in spec.items() if k != "id"}
    path = f"/api/v1/schedules/{_p(checked.id)}"
    return [Item("Schedule", f"schedule/{checked.id}", path, definition, ScheduleDefinition,
                 ("POST", "/api/v1/schedules"), ("PUT", path),
                 held=partial(_schedule_held, checked.catchup_window))]  # fmt: skip


def _schedule_held(wanted: float | None, view: dict[str, Any]) -> dict[str, Any]:
    """No catch-up window in the file is Temporal's default: the one it reports then counts
    as the file's."""
    held = dict(view)
    if wanted is None:
        held["catchup_window"] = None
    return held


def check_documents(docs: list[dict[str, Any]]) -> list[Item]:
    """Every document checked (all problems told at once), then the items in apply order."""
    items: list[tuple[int, int, Item]] = []
    problems: list[str] = []
    for i, doc in enumerate(docs, 1):
        try:
            if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
                raise UsageError("`kind:` and a `spec:` mapping")
            kind = doc.get("kind")
            if kind not in ORDER:
                raise UsageError(f"kind {kind!r}; one of {', '.join(ORDER)}")
            spec = doc["spec"]
            if kind == "Component":
                made = _component(spec)
            elif kind == "Policy":
                made = _policy(doc, spec)
            elif kind == "ConfigurationEntry":
                made = _configuration(spec)
            else:
                made = _schedule(spec)
            items += [(ORDER.index(kind), i, item) for item in made]
        except UsageError as err:
            problems.append(f"document {i}: {err}")
        except ValidationError as err:
            problems.append(f"document {i} ({doc.get('kind')}): {_problems(err)}")
    if problems:
        raise UsageError("nothing applied:\n  " + "\n  ".join(problems))
    return [item for _, _, item in sorted(items, key=lambda t: (t[0], t[1]))]


def _same(model: type[BaseModel], current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Whether what the API holds already is what the file declares (both normalised)."""
    fields = model.model_fields
    try:
        held = model.model_validate({k: v for k, v in current.items() if k in fields})
        wanted = model.model_validate(desired)
    except ValueError:
        return False
    return bool(held.model_dump(mode="json") == wanted.model_dump(mode="json"))


def apply_item(api: ApiClient, item: Item, dry_run: bool) -> str:
    try:
        answer = api.request("GET", item.path)
        current = item.held(answer) if isinstance(answer, dict) else None
    except ApiError as err:
        if err.status != 404:
            raise
        current = None
    if current is not None and item.model is not None and _same(item.model, current, item.body):
        return f"{item.label} unchanged"
        return f"{item.label} unchanged"
    verb = "created" if current is None else "configured"
    if dry_run:
        return f"{item.label} would be {verb}{item.note}"
    method, path = item.create if current is None else item.update
    body = item.body
    if method == "POST" and item.kind == "Schedule":
        body = {"id": item.label.partition("/")[2], **body}
    api.request(method, path, body)
    return f"{item.label} {verb}"
