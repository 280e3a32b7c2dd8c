"""`r2c get`, `describe` and `apply --dry-run` over canned API bodies: the tables name what a
person looks for, `-o json|yaml` print the API's body as it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli import resources
from cli.main import app

BODIES: dict[str, Any] = {
    "/api/v1/components": [
        {"name": "demo", "owner": "platform", "revision": 3, "description": "the demo",
         "health": {"state": "healthy"}}
    ],
    "/api/v1/deployments?limit=50": {"items": [
        {"id": "dep-1", "component": "demo", "environment": "dev", "version": "v2",
         "strategy": "canary", "state": "rolled_back", "created_at": "2026-11-29T14:00:00Z",
         "initiator": "apikey:admin"}], "total": 1, "next_offset": None},
    "/api/v1/releases": {"items": [
        {"id": "rel-1", "environment": "staging", "components": {"api": "v2", "web": "v3"},
         "state": "succeeded", "created_at": "2026-11-29T14:00:00Z"}]},
    "/api/v1/pipelines": {"items": [
        {"name": "main", "environments": [{"environment": "dev"}, {"environment": "prod"}],
         "runs": [{}], "stop": None}]},
}  # fmt: skip


class Canned:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.sent.append((method, path))
        return BODIES[path]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Canned:
    canned = Canned()
    monkeypatch.setattr(resources, "client", lambda *a: canned)
    return canned


@pytest.mark.parametrize(
    ("kind", "row"),
    [
        ("components", ["demo", "platform", "3", "healthy", "the demo"]),
        ("deployments", ["dep-1", "demo", "dev", "v2", "canary", "rolled_back",
                         "2026-11-29 14:00:00", "apikey:admin"]),
        ("releases", ["rel-1", "staging", "api=v2 web=v3", "succeeded", "2026-11-29 14:00:00"]),
        ("pipelines", ["main", "dev -> prod", "1"]),
    ],
)  # fmt: skip
def test_get_tables(api: Canned, kind: str, row: list[str]) -> None:
    out = CliRunner().invoke(app, ["get", kind])
    assert out.exit_code == 0, out.output
    header, first = out.output.splitlines()[:2]
    assert [c.strip() for c in first.split("  ") if c.strip()] == row
    assert header.split()[0] in ("NAME", "ID")


def test_json_and_yaml_are_the_api_body(api: Canned) -> None:
    as_json = CliRunner().invoke(app, ["get", "releases", "-o", "json"])
    assert json.loads(as_json.output) == BODIES["/api/v1/releases"]
    as_yaml = CliRunner().invoke(app, ["get", "components", "-o", "yaml"])
    assert yaml.safe_load(as_yaml.output) == BODIES["/api/v1/components"]


def test_apply_refuses_an_unknown_kind_as_a_usage_error(api: Canned, tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("kind: Component\nspec: {name: a}\n---\nkind: Gadget\nspec: {}\n")
    out = CliRunner().invoke(app, ["apply", "-f", str(path)])
    assert out.exit_code == 2
    assert "document 2: kind 'Gadget'; one of Component, Policy, ConfigurationEntry" in out.output
    assert api.sent == []  # nothing applied from a file with a bad document
